"""RFC 9457 problem details: every error the API returns is one of these JSON bodies.

``Problem`` and ``Refusal`` live in ``service.errors`` (no FastAPI there).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import Problem, Refusal

__all__ = [
    "MEDIA_TYPE",
    "PROBLEM_RESPONSES",
    "TOO_MANY_REFUSALS",
    "install_problem_handlers",
    "problem_body",
]

logger = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"


_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}
_MEANING = {
    400: "Bad request",
    401: "No, unknown or revoked API key",
    403: "The key's role may not do this",
    404: "No such resource (or another project's)",
    408: "The body did not arrive in time",
    409: "Conflicts with the current state (budget, gates, job state)",
    413: "Upload too large (or a zip bomb)",
    415: "Unsupported file type",
    422: "Invalid input, named in detail",
    429: "Too many refused requests from this client (see Retry-After)",
    503: "Not ready, or every sampler busy (see Retry-After)",
}
# Documented on every route, so the OpenAPI spec says what the API really answers.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {
        "description": f"{meaning} (RFC 9457 problem)",
        "content": {MEDIA_TYPE: {"schema": _PROBLEM_SCHEMA}},
    }
    for code, meaning in _MEANING.items()
}


TOO_MANY_REFUSALS = "too many refused requests from this client; wait a minute"


def problem_body(
    status: int, title: str, detail: str, instance: str, **extra: Any
) -> dict[str, Any]:
    """An RFC 9457 problem document (the handlers here and ``service.http.guards`` send it)."""
    slug = title.lower().replace(" ", "-")
    return {
        "type": f"https://sanitas.dev/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }


def _response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=body["status"], media_type=MEDIA_TYPE, headers=headers)


def _record_refusal(request: Request, status: int, refusal: Refusal) -> None:
    """In a session of its own: the request's session is rolled back with the error."""
    from service.domain.records import audit

    with request.app.state.sessions() as s:
        audit(
            s, refusal.actor, "access.refused", project_id=refusal.project_id,
            # bounded: the path and reason are the client's to choose (target is 64 wide)
            target=request.url.path[:64], path=request.url.path[:200],
            method=request.method[:16], status=status, reason=refusal.reason[:200],
        )  # fmt: skip
        s.commit()


def install_problem_handlers(app: FastAPI) -> None:
    from service.http.idempotency import Replay

    @app.exception_handler(Replay)
    async def _replay(request: Request, exc: Replay) -> JSONResponse:
        return JSONResponse(exc.body, exc.status, headers={"Idempotent-Replayed": "true"})

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        if exc.refusal is not None:
            client = request.client.host if request.client else "unknown"
            if not request.app.state.refusals.allow(client):
                body = problem_body(
                    429, "Too Many Requests", TOO_MANY_REFUSALS, request.url.path[:200]
                )
                return _response(body, {"Retry-After": "60"})
            await run_in_threadpool(_record_refusal, request, exc.status, exc.refusal)
        body = problem_body(exc.status, exc.title, exc.detail, request.url.path, **exc.extra)
        return _response(body, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {
            401: "Unauthorized",
            403: "Forbidden",
            404: "Not Found",
            405: "Method Not Allowed",
        }.get(exc.status_code, "HTTP Error")
        headers = getattr(exc, "headers", None)
        return _response(
            problem_body(exc.status_code, title, str(exc.detail), request.url.path), headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return _response(
            problem_body(422, "Invalid Request", detail, request.url.path, errors=errors)
        )

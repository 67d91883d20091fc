"""The console reaches data only through the API, in process, as its signed-in key.

So every rule (roles, projects, budgets, gates, bounds, audit entries) lives once, in
the API, and the console refuses exactly what the API refuses. The call goes through the
whole app (middleware, routing, problem handlers) with the key's Principal placed under
``CONSOLE_SCOPE`` of the ASGI scope, which no request from outside can set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.http.auth import CONSOLE_SCOPE, Principal

__all__ = ["Api", "ApiError", "Forwarded"]

Params = Mapping[str, Any] | Sequence[tuple[str, Any]] | None


class ApiError(Exception):
    """A problem the API answered (RFC 9457), shown to the user as it was said."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def _as_signed_in(app: ASGIApp, who: Principal) -> ASGIApp:
    async def call(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, CONSOLE_SCOPE: who}, receive, send)

    return call


class Api:
    """JSON calls to the API as ``who``, answered whole (pages, forms, the report)."""

    def __init__(self, request: Request, who: Principal) -> None:
        self.app, self.who = request.app, who
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=_as_signed_in(request.app, who)),
            base_url="http://console.internal",
            timeout=60,
        )

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.client.aclose()

    async def call(self, method: str, path: str, *, params: Params = None, **kw: Any) -> Any:
        response = await self.client.request(method, path, params=_clean(params), **kw)
        if response.status_code >= 400:
            raise _problem(response)
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response

    async def get(self, path: str, params: Params = None) -> Any:
        return await self.call("GET", path, params=params)

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return await self.call("POST", path, json=body or {})


def _clean(params: Params) -> list[tuple[str, Any]] | None:
    """Query parameters without empty values (the API refuses what it does not take)."""
    if params is None:
        return None
    items = params.items() if isinstance(params, Mapping) else params
    return [(k, v) for k, v in items if v not in (None, "")]


def _problem(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = body.get("detail")
    if isinstance(detail, list):  # FastAPI's validation errors: name each field
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg')}" for e in detail
        )
    return ApiError(
        response.status_code, str(body.get("title") or response.reason_phrase), str(detail or "")
    )


class Forwarded(Response):
    """A GET answered by the API straight to the browser, streamed (downloads, exports):
    the API's own headers (type, attachment name) and its audit of the stream's end."""

    def __init__(self, who: Principal, path: str, params: Params) -> None:
        super().__init__()
        self.who, self.path, self.query = who, path, urlencode(_clean(params) or [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        inner: dict[str, Any] = {
            key: scope[key]
            for key in ("type", "asgi", "http_version", "scheme", "server", "client", "root_path")
            if key in scope
        }
        if "state" in scope:
            inner["state"] = scope["state"]
        inner |= {
            "method": "GET",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": self.query.encode(),
            "headers": [(b"host", b"console.internal")],
            CONSOLE_SCOPE: self.who,
        }
        await scope["app"](inner, receive, send)

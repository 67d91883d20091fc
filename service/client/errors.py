"""Problems (RFC 9457) the API answers, raised as exceptions a caller can catch by kind.

Each carries the problem's fields: ``status``, ``title``, ``detail`` and the extras the
route adds (``epsilon_remaining``, ``failed_gates``, ``jobs``, ``reason``...) in
``fields``, so a caller reacts to what happened rather than parsing a message.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "BudgetExceeded",
    "Conflict",
    "Forbidden",
    "Gone",
    "InvalidRequest",
    "NotFound",
    "TruncatedDownload",
    "Unauthorized",
    "Unavailable",
    "error_for",
]


class ApiError(Exception):
    """A problem answer: its status, title, detail and any further fields."""

    def __init__(self, status: int, title: str, detail: str, fields: dict[str, Any]) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status, self.title, self.detail, self.fields = status, title, detail, fields


class Unauthorized(ApiError):
    """401: no key, an unknown one or a revoked one."""


class Forbidden(ApiError):
    """403: the key's role may not do this."""


class NotFound(ApiError):
    """404: no such resource, or one of another project (the same answer)."""


class Conflict(ApiError):
    """409: the resource's state forbids it (already released, erased, jobs running...)."""


class BudgetExceeded(Conflict):
    """409 Budget Exceeded: ``fields`` has ``epsilon_remaining`` and ``delta_remaining``."""


class Gone(ApiError):
    """410: a withdrawn release; ``fields["reason"]`` says why."""


class InvalidRequest(ApiError):
    """422: the request names something the API refuses; ``detail`` says what."""


class Unavailable(ApiError):
    """503: samplers busy or unavailable; retried before it is raised."""


class TruncatedDownload(Exception):
    """A sample stream ended before the rows asked for arrived."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: InvalidRequest,
    503: Unavailable,
}


def error_for(status: int, body: Any) -> ApiError:
    """The exception for a problem body (or any non-JSON error answer)."""
    problem = body if isinstance(body, dict) else {"detail": str(body)[:500]}
    fields = {k: v for k, v in problem.items() if k not in ("status", "title", "detail", "type")}
    title = str(problem.get("title", "HTTP Error"))
    cls = BudgetExceeded if title == "Budget Exceeded" else _BY_STATUS.get(status, ApiError)
    return cls(status, title, str(problem.get("detail", "")), fields)

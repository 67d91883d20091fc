"""What the domain refuses with: a problem the HTTP layer turns into RFC 9457 JSON.

FastAPI-free, so the scheduler and the workers can raise and catch it without loading
the web stack; ``service.http.problems`` renders it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Problem", "Refusal"]


@dataclass(frozen=True)
class Refusal:
    """Who was turned away from what: the handler writes it to the audit log."""

    actor: str  # a key id, or "anonymous" (a presented secret is never logged)
    project_id: str | None  # whose resource was asked for; its auditors see the attempt
    reason: str


class Problem(Exception):
    """Raise anywhere in a route or the domain: becomes ``{type, title, status, detail}``.

    ``refusal`` marks an access refusal (bad key, wrong role, another project's
    resource); it goes to the audit log, not into the response.
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        refusal: Refusal | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra
        self.refusal, self.headers = refusal, headers

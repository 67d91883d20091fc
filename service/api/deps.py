"""What routes share: a database session per request, scope checks, the audit log."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TypeVar

from fastapi import Request
from sqlalchemy.orm import Session

from service.auth import Principal
from service.db import AuditEvent, Base, aware
from service.problems import Problem, Refusal

__all__ = ["audit", "get_scoped", "iso", "new_id", "session"]

T = TypeVar("T", bound=Base)


def session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as s:
        yield s


def new_id() -> str:
    return secrets.token_hex(12)


def get_scoped(s: Session, cls: type[T], ident: str, who: Principal) -> T:
    """The row, or 404 when it does not exist or lies in another project (no leak)."""
    row = s.get(cls, ident)
    if row is None:
        raise Problem(404, "Not Found", f"no {cls.__name__.lower()} {ident!r}")
    project = row.project_id  # type: ignore[attr-defined]
    if not who.sees(project):  # the same answer as a missing row; the owner's log notes it
        raise Problem(
            404,
            "Not Found",
            f"no {cls.__name__.lower()} {ident!r}",
            refusal=Refusal(who.key_id, project, f"key of project {who.project_id}"),
        )
    return row


def audit(
    s: Session,
    who: Principal | str,
    action: str,
    *,
    project_id: str | None,
    target: str | None = None,
    **detail: Any,
) -> None:
    actor = who if isinstance(who, str) else who.key_id
    s.add(
        AuditEvent(actor=actor, project_id=project_id, action=action, target=target, detail=detail)
    )


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 with the zone, whatever the database handed back."""
    return aware(moment).isoformat() if moment is not None else None

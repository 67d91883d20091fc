"""What routes share: a database session per request, scope checks, the audit log."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, TypeVar

from fastapi import Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.auth import Principal
from service.db import AuditEvent, Base, aware
from service.problems import Problem, Refusal

__all__ = ["audit", "check_scope", "get_scoped", "iso", "new_id", "session"]

T = TypeVar("T", bound=Base)


async def session(request: Request) -> AsyncIterator[Session]:
    """A session per request. Opening one does no I/O (it connects on first use), so it
    opens on the event loop; closing returns the connection, so it closes in a thread.

    A sync generator dependency costs two thread hops (enter, exit) per request.
    """
    s = request.app.state.sessions()
    try:
        yield s
    finally:
        await run_in_threadpool(s.close)


def new_id() -> str:
    return secrets.token_hex(12)


def get_scoped(s: Session, cls: type[T], ident: str, who: Principal) -> T:
    """The row, or 404 when it does not exist or lies in another project (no leak)."""
    row = s.get(cls, ident)
    if row is None:
        raise Problem(404, "Not Found", f"no {cls.__name__.lower()} {ident!r}")
    check_scope(who, row.project_id, cls.__name__.lower(), ident)  # type: ignore[attr-defined]
    return row


def check_scope(who: Principal, project: str, kind: str, ident: str) -> None:
    """404 for a key of another project: the same answer as a missing row; the owner's
    audit log notes the attempt."""
    if not who.sees(project):
        raise Problem(
            404,
            "Not Found",
            f"no {kind} {ident!r}",
            refusal=Refusal(who.key_id, project, f"key of project {who.project_id}"),
        )


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

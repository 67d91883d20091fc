"""What routes share: a database session per request and scope checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

from fastapi import Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.db import Base
from service.errors import Problem, Refusal
from service.http.auth import Principal

__all__ = ["check_scope", "get_scoped", "session"]

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

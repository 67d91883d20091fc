"""What every part of the domain writes: new ids, timestamps, the audit log."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from service.audit_chain import PENDING, chain_of
from service.db import AuditEvent, aware, now

__all__ = ["Actor", "audit", "iso", "new_id"]


class Actor(Protocol):
    """Who acts: an API key (``service.http.auth.Principal``) by its id."""

    @property
    def key_id(self) -> str: ...


def new_id() -> str:
    return secrets.token_hex(12)


def audit(
    s: Session,
    who: Actor | str,
    action: str,
    *,
    project_id: str | None,
    target: str | None = None,
    **detail: Any,
) -> None:
    """One audit event, in the caller's transaction; ``who`` a key or a system name."""
    actor = who if isinstance(who, str) else who.key_id
    entry = AuditEvent(
        at=now(), actor=actor, project_id=project_id, chain=chain_of(project_id),
        action=action, target=target, detail=detail,
    )  # fmt: skip
    s.add(entry)
    s.info.setdefault(PENDING, []).append(entry)  # sealed at commit


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 with the zone, whatever the database handed back."""
    return aware(moment).isoformat() if moment is not None else None

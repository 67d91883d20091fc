"""The web console's sign-ins: an API key, given once, becomes a session cookie.

The browser never holds the key after sign-in, only a random token in an HttpOnly,
SameSite=Strict cookie; the database holds the token's SHA-256, the key it acts as and
the CSRF token every form must carry. A session ends at sign-out, at expiry, or at once
when its key is revoked (checked on every request, as for the key itself). One-time
links (``sanitas console link``) let an operator hand a browser a session without the
key being typed: the link dies when redeemed or after LINK_MINUTES.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from service.db import ApiKey, ConsoleLink, ConsoleSession, Role, now
from service.domain.records import audit
from service.http.auth import Principal, hash_key

__all__ = [
    "COOKIE",
    "LINK_MINUTES",
    "SESSION_HOURS",
    "SignedIn",
    "csrf_matches",
    "end_session",
    "find_session",
    "make_link",
    "redeem_link",
    "session_alive",
    "start_session",
]

COOKIE = "sanitas_console"
SESSION_HOURS = 8
LINK_MINUTES = 15


@dataclass(frozen=True)
class SignedIn:
    """Who a console request acts as: the key's id, role and project, and the CSRF token
    of the session (the page's forms carry it)."""

    key_id: str
    role: Role
    project_id: str | None
    label: str | None
    csrf: str

    @property
    def principal(self) -> Principal:
        """What the console's in-process API calls act as."""
        return Principal(self.key_id, self.role, self.project_id)


def _live_key(s: Session, key_id: str) -> ApiKey:
    key = s.get(ApiKey, key_id)
    if key is None or key.revoked_at is not None:
        raise ValueError(f"no live API key {key_id!r}")
    return key


def start_session(s: Session, key_id: str, *, via: str) -> str:
    """A new session for the key, audited; the cookie's token (the only time it is seen)."""
    key = _live_key(s, key_id)
    token = secrets.token_urlsafe(32)
    audit(s, key_id, "console.sign_in", project_id=key.project_id, via=via)
    s.add(
        ConsoleSession(
            id=hash_key(token),
            key_id=key_id,
            csrf=secrets.token_urlsafe(32),
            expires_at=now() + timedelta(hours=SESSION_HOURS),
        )
    )
    s.commit()
    return token


def find_session(s: Session, token: str | None) -> SignedIn | None:
    """The live session the cookie names: not ended, not expired, its key not revoked."""
    if not token:
        return None
    row = s.execute(
        select(ConsoleSession, ApiKey)
        .join(ApiKey, ApiKey.id == ConsoleSession.key_id)
        .where(ConsoleSession.id == hash_key(token))
    ).first()
    if row is None:
        return None
    session, key = row
    expires = session.expires_at
    if expires.tzinfo is None:  # SQLite hands times back naive (they were stored UTC)
        expires = expires.replace(tzinfo=now().tzinfo)
    if session.ended_at is not None or key.revoked_at is not None or expires <= now():
        return None
    return SignedIn(key.id, Role(key.role), key.project_id, key.label, session.csrf)


def session_alive(engine: Engine, token: str) -> bool:
    """For the body guard: whether a console request may send a body at all."""
    with Session(engine) as s:
        return find_session(s, token) is not None


def end_session(s: Session, token: str | None) -> None:
    found = find_session(s, token)
    if token and found:
        s.execute(
            update(ConsoleSession)
            .where(ConsoleSession.id == hash_key(token), ConsoleSession.ended_at.is_(None))
            .values(ended_at=now())
            .execution_options(synchronize_session=False)
        )
        audit(s, found.key_id, "console.sign_out", project_id=found.project_id)
        s.commit()


def csrf_matches(signed_in: SignedIn, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(signed_in.csrf.encode(), (sent or "").encode())


def make_link(s: Session, key_id: str) -> str:
    """A one-time sign-in token for the key (ValueError unless the key is live)."""
    _live_key(s, key_id)
    token = secrets.token_urlsafe(32)
    s.add(
        ConsoleLink(
            id=hash_key(token),
            key_id=key_id,
            expires_at=now() + timedelta(minutes=LINK_MINUTES),
        )
    )
    s.commit()
    return token


def redeem_link(s: Session, token: str) -> str | None:
    """The key id of an unused, unexpired link, marked used in the same statement (two
    browsers racing for one link: one wins)."""
    row = s.get(ConsoleLink, hash_key(token))
    if row is None:
        return None
    claimed = s.execute(
        update(ConsoleLink)
        .where(
            ConsoleLink.id == row.id,
            ConsoleLink.used_at.is_(None),
            ConsoleLink.expires_at > now(),
        )
        .values(used_at=now())
        .execution_options(synchronize_session=False)  # the database compares the times
    )
    s.commit()
    return row.key_id if claimed.rowcount == 1 else None  # type: ignore[attr-defined]

"""Bearer API keys. Keys are random, stored as SHA-256 hashes; each has one role and,
except for admins, one project."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine, Row, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.db import ApiKey, Project, Role
from service.errors import Problem, Refusal

__all__ = [
    "CONSOLE_SCOPE",
    "Principal",
    "create_key",
    "hash_key",
    "lookup_key",
    "require",
    "revoke_key",
]

bearer = HTTPBearer(auto_error=False)
# The web console calls the API in process (service.console.api_calls) as its signed-in
# key: it puts that key's Principal under this ASGI scope key, which no HTTP request from
# outside can set (servers build the scope from the wire; headers stay headers).
CONSOLE_SCOPE = "sanitas.console.principal"


@dataclass(frozen=True)
class Principal:
    key_id: str
    role: Role
    project_id: str | None  # None: admin, every project

    def sees(self, project_id: str) -> bool:
        return self.project_id is None or self.project_id == project_id


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_key(
    session: Session, role: Role, project: str | None, *, label: str | None = None
) -> tuple[str, str]:
    """A new key (the only time its secret is seen) and its id."""
    if role != Role.ADMIN and not project:
        raise ValueError(f"a {role} key needs a project")
    if project and session.get(Project, project) is None:
        session.add(Project(id=project))
        session.flush()
    token = "san_" + secrets.token_urlsafe(32)
    key_id = secrets.token_hex(8)
    session.add(
        ApiKey(
            id=key_id,
            key_hash=hash_key(token),
            role=role,
            project_id=None if role == Role.ADMIN else project,
            label=label,
        )
    )
    session.commit()
    return token, key_id


def revoke_key(session: Session, key_id: str) -> bool:
    """Revoke at once: the next request with the key is refused. False if unknown."""
    from service.db import now

    key = session.get(ApiKey, key_id)
    if key is None:
        return False
    if key.revoked_at is None:
        key.revoked_at = now()
        session.commit()
    return True


async def _principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Principal:
    """The key's principal, looked up on every request (a revoked key fails at once).

    On SQLite the lookup is a point read of a local file in WAL mode (readers never wait
    for writers), cheaper than the thread hop that a sync dependency costs: the hop was
    half the CPU of a release-card read under load. It runs on the event loop through a
    connection of its own (``key_reader``), so it never waits for the request pool. On
    PostgreSQL it is a network round trip, so it runs in a thread, off the event loop.
    """
    console = request.scope.get(CONSOLE_SCOPE)
    if credentials is None and isinstance(console, Principal):
        return console  # the console looked its session and key up for this request
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Problem(
            401,
            "Unauthorized",
            "send an API key: Authorization: Bearer <key>",
            refusal=Refusal("anonymous", None, "no API key"),
        )
    state, token = request.app.state, credentials.credentials
    if state.key_reader is not None:
        key = lookup_key(state.key_reader, token)
    else:
        key = await run_in_threadpool(lookup_key, state.engine, token)
    if key is None:
        raise Problem(
            401,
            "Unauthorized",
            "unknown or revoked API key",
            refusal=Refusal("anonymous", None, "unknown API key"),
        )
    if key.revoked_at is not None:
        raise Problem(
            401,
            "Unauthorized",
            "unknown or revoked API key",
            refusal=Refusal(key.id, key.project_id, "revoked API key"),
        )
    return Principal(key.id, Role(key.role), key.project_id)


def lookup_key(engine: Engine, token: str) -> Row[str, str, str | None, datetime | None] | None:
    # Core, not the ORM: this runs on every request
    query = select(ApiKey.id, ApiKey.role, ApiKey.project_id, ApiKey.revoked_at).where(
        ApiKey.key_hash == hash_key(token)
    )
    with engine.connect() as connection:
        return connection.execute(query).first()


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits only ``roles`` (admins always); others get 403."""

    async def dependency(principal: Principal = Depends(_principal)) -> Principal:
        # async: no I/O here, and a sync dependency would cost a thread hop
        if principal.role != Role.ADMIN and principal.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise Problem(
                403,
                "Forbidden",
                f"role {principal.role} may not do this (allowed: {allowed})",
                refusal=Refusal(principal.key_id, principal.project_id, f"role {principal.role}"),
            )
        return principal

    dependency.roles = roles  # type: ignore[attr-defined]  # read by the route-walk test
    return dependency

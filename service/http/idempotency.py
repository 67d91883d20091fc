"""``Idempotency-Key`` on the POSTs that charge or create: a client retrying after a
timeout is charged once and gets the first answer again.

The key is scoped to the API key that sent it. The first request's answer is stored in
the same transaction as what it created (the job and its charge, the release, the
schedule), so either both exist or neither does; a retry with the same key and the
same body is answered the stored response (with ``Idempotent-Replayed: true``) without
doing anything; the same key with a different body is a 422. Two copies racing meet
at the table's unique key: the loser's transaction, charge included, rolls back and it
answers the winner's response. Keys are kept for KEEP (a day), then may be reused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import Header, Request
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import IdempotentRequest, now
from service.errors import Problem

__all__ = ["Idempotency", "Replay", "idempotency"]

KEEP = timedelta(days=1)
MAX_KEY = 200


class Replay(Exception):
    """Answer a stored response instead of running the route again."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


@dataclass(frozen=True)
class Idempotency:
    key: str | None  # None: the client sent no Idempotency-Key
    route: str
    fingerprint: str

    def replay(self, s: Session, key_id: str) -> None:
        """Raise Replay when this key already answered this API key's request."""
        if self.key is None:
            return
        seen = s.scalar(
            select(IdempotentRequest).where(
                IdempotentRequest.key_id == key_id,
                IdempotentRequest.idempotency_key == self.key,
                IdempotentRequest.created_at > now() - KEEP,
            )
        )
        if seen is None:
            return
        if (seen.route, seen.fingerprint) != (self.route, self.fingerprint):
            raise Problem(
                422,
                "Idempotency Key Reused",
                f"Idempotency-Key {self.key!r} was used for a different request "
                f"({seen.route}) in the last {KEEP.days} day: use a new key per request",
            )
        raise Replay(seen.status, seen.response)

    def commit(self, s: Session, key_id: str, status: int, response: Any) -> None:
        """Store the answer with what the route wrote, and commit both; a racing copy
        that committed first wins and this one answers its response."""
        if self.key is not None:
            s.execute(
                delete(IdempotentRequest).where(
                    IdempotentRequest.key_id == key_id,
                    IdempotentRequest.idempotency_key == self.key,
                    IdempotentRequest.created_at <= now() - KEEP,
                )
            )
            s.add(
                IdempotentRequest(
                    key_id=key_id, idempotency_key=self.key, route=self.route,
                    fingerprint=self.fingerprint, status=status, response=response,
                )
            )  # fmt: skip
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
            self.replay(s, key_id)
            raise


async def idempotency(
    request: Request,
    idempotency_key: str | None = Header(
        default=None,
        max_length=MAX_KEY,
        description="any unique string (a UUID): a retry with the same key and body is "
        "answered the first response and charged nothing more",
    ),
) -> Idempotency:
    body = await request.body()  # JSON routes only: FastAPI has read it already
    try:
        canonical = json.dumps(json.loads(body or b"null"), sort_keys=True).encode()
    except ValueError:
        canonical = body
    route = f"{request.method} {request.url.path}"
    return Idempotency(idempotency_key, route, hashlib.sha256(canonical).hexdigest())

"""What happens before a route sees a request: the key, then the body, each bounded.

Why a plain ASGI middleware and not a dependency: FastAPI reads (and for multipart,
spools to disk) the whole body before it resolves the route's dependencies, so a
500 MB upload with a junk key was written to disk before its 401. Here a request that
carries a body is authenticated on its headers alone, refused at once by its declared
length, and its body is counted and timed while it streams: the route never gets
more bytes, or waits longer, than the limits allow. Refusals are rate-limited per
client (``limits``), so junk keys cannot fill the audit log.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import anyio
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.concurrency import run_in_threadpool
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.auth import CONSOLE_SCOPE
from service.http.console_sessions import COOKIE
from service.http.problems import MEDIA_TYPE, TOO_MANY_REFUSALS, problem_body

__all__ = ["BodyGuard", "RefusalLimiter"]

logger = logging.getLogger(__name__)
BODY_METHODS = {"POST", "PUT", "PATCH"}
UPLOAD_PATH = re.compile(r"^/(v1|console)/datasets(/[^/]{1,128}/versions)?/?$")
CONSOLE_PREFIX = "/console"
SIGN_IN_PATH = "/console/sign-in"
SIGN_IN_BYTES = 4096  # the sign-in form holds an API key and a next page, nothing more
MAX_AUTHORIZATION = 512  # a Sanitas key is 47 characters


class RefusalLimiter:
    """Refused requests per client and minute; past that they are answered 429 and
    neither audited nor logged."""

    def __init__(self, per_minute: int) -> None:
        self.limit = RateLimitItemPerMinute(per_minute)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def allow(self, client: str) -> bool:
        return bool(self.limiter.hit(self.limit, "refused", client[:64]))


def client_of(scope: Scope) -> str:
    peer = scope.get("client")
    return str(peer[0]) if peer else "unknown"


class _BodyRefused(BaseException):
    """Raised from ``receive`` inside the app. A BaseException, because FastAPI turns any
    Exception met while parsing a body into a generic 400."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class BodyGuard:
    """Authenticate requests with a body on their headers, then bound the body.

    ``lookup(token)`` answers whether a key is known and not revoked (the same query
    the routes' dependency makes, which still decides roles and projects).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        lookup: Callable[[str], Any],
        console_session: Callable[[str], bool],
        lookup_on_loop: bool,
        max_upload_bytes: int,
        max_json_bytes: int,
        read_seconds: float,
        refusals: RefusalLimiter,
    ) -> None:
        self.app, self.lookup, self.lookup_on_loop = app, lookup, lookup_on_loop
        self.console_session = console_session
        self.max_upload, self.max_json = max_upload_bytes, max_json_bytes
        self.read_seconds, self.refusals = read_seconds, refusals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        if scope.get(CONSOLE_SCOPE) is not None:  # the console, in process, signed in
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        path = scope["path"]
        if path == SIGN_IN_PATH:  # the credential is the body: a small one
            refused, limit = None, SIGN_IN_BYTES
        else:
            refused = await (
                self._signed_in(headers.get(b"cookie", b""))
                if path.startswith(CONSOLE_PREFIX)
                else self._authenticate(headers.get(b"authorization", b""))
            )
            limit = self.max_upload if UPLOAD_PATH.match(path) else self.max_json
        if refused:
            await self._refuse(scope, send, 401, "Unauthorized", refused)
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            detail = f"the body declares {declared.decode()[:20]} bytes; the limit is {limit:,}"
            await self._refuse(scope, send, 413, "Payload Too Large", detail)
            return
        seen = 0

        async def bounded() -> Message:
            nonlocal seen
            try:
                with anyio.fail_after(self.read_seconds):
                    message = await receive()
            except TimeoutError:
                detail = f"the body was not received within {self.read_seconds:g} s"
                raise _BodyRefused(408, "Request Timeout", detail) from None
            seen += len(message.get("body", b""))
            if seen > limit:
                detail = f"the body ran past {limit:,} bytes; the limit is {limit:,}"
                raise _BodyRefused(413, "Payload Too Large", detail)
            return message

        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded, tracking)
        except _BodyRefused as refusal:
            if not started:
                await self._refuse(scope, send, refusal.status, refusal.title, refusal.detail)

    async def _authenticate(self, authorization: bytes) -> str | None:
        """None when the key is good, else why not (no body has been read)."""
        if len(authorization) > MAX_AUTHORIZATION:
            return "the Authorization header is too long to hold an API key"
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "send an API key: Authorization: Bearer <key>"
        key = await self._look_up(self.lookup, token.strip())
        if key is None or key.revoked_at is not None:
            return "unknown or revoked API key"
        return None

    async def _signed_in(self, cookie_header: bytes) -> str | None:
        """None when the console cookie names a live session, else why not (the cookie
        read as the route's ``request.cookies`` reads it)."""
        token = cookie_parser(cookie_header.decode("latin-1")[:4096]).get(COOKIE)
        if not token:
            return "sign in to the console first"
        alive = await self._look_up(self.console_session, token)
        return None if alive else "the console session has ended: sign in again"

    async def _look_up(self, lookup: Callable[[str], Any], token: str) -> Any:
        """As the routes' dependencies do: SQLite's key reader is a local point read on
        its own connection, used on the event loop; PostgreSQL's is a round trip, made in
        a thread."""
        if self.lookup_on_loop:
            return lookup(token)
        return await run_in_threadpool(lookup, token)

    async def _refuse(self, scope: Scope, send: Send, status: int, title: str, detail: str) -> None:
        if not self.refusals.allow(client_of(scope)):
            status, title, detail = 429, "Too Many Requests", TOO_MANY_REFUSALS
        else:
            logger.info("refused %s %s: %s", scope["method"], scope["path"][:200], title)
        body = json.dumps(problem_body(status, title, detail, scope["path"][:200])).encode()
        headers = [
            (b"content-type", MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        if status == 429:
            headers.append((b"retry-after", b"60"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

"""uvicorn's h11 protocol with a deadline for each request's line and headers.

Why: uvicorn times out idle keep-alive connections but not a request whose headers
never finish, so 300 half-sent requests stayed open for good, each holding a socket
and a protocol object. Here every connection must deliver a complete request head
within ``header_seconds`` of opening, and again after each response, or it is closed.
h11 (rather than httptools) also honours ``h11_max_incomplete_event_size``, the bound
on the request line and headers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HeaderDeadlineProtocol", "protocol_with_deadline"]


class HeaderDeadlineProtocol(H11Protocol):
    header_seconds = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a request's head arrived whole
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # the next request on this connection has its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        busy = self.cycle is not None and not self.cycle.response_complete
        if not busy and not self.transport.is_closing():
            self.transport.close()


def protocol_with_deadline(seconds: float) -> Any:
    """The protocol class for ``uvicorn.run(http=...)`` with this deadline."""
    return type("HeaderDeadline", (HeaderDeadlineProtocol,), {"header_seconds": seconds})

"""One download's stream from its sampler to the client, and the slot it holds.

A client that stops reading blocks the HTTP send, not this code: a watchdog stops the
sampler once the client has taken nothing for ``stall_seconds`` and hands the slot on.
``finish`` is idempotent: the stream's end, the watchdog and the response's background
task all call it; its first call hands ``on_finish`` whether the sampler's whole output
went out and how many bytes did (the download's audit entry is written then).

The sampler frames its file and closes it with an empty frame (``sampler_pool``). A
connection that ends without that frame is a sampler that died mid-stream: the stream
then raises ``SamplerEndedShort``, so the server drops the connection without the
response's closing chunk (the client sees a truncated transfer, never a short file that
looks whole) and the download is audited incomplete.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from service.sampling.download_slots import DownloadSlots
from service.sampling.sampler_pool import FRAME_HEADER

__all__ = ["SampleStream", "SamplerEndedShort"]

CHUNK_BYTES = 65536
logger = logging.getLogger(__name__)


class SamplerEndedShort(Exception):
    """The sampler's connection closed before the file's closing frame."""


class SampleStream:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        slots: DownloadSlots,
        holder: tuple[str, str],
        stall_seconds: float,
        on_finish: Callable[[bool, int], Awaitable[None]] | None = None,
    ) -> None:
        self.reader, self.writer, self.slots, self.holder = reader, writer, slots, holder
        self.stall_seconds, self.on_finish = stall_seconds, on_finish
        self.finished = self.complete = False
        self.sent = 0
        self._left = 0  # bytes of the current frame still to read
        self.ended: asyncio.Future[None] | None = None
        self._handed: float | None = asyncio.get_running_loop().time()  # last chunk taken

    async def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.writer.close()  # a child still writing gets EPIPE and exits
        if self.on_finish is not None:
            # a task of its own: a client gone cancels this one at its next await (the
            # server's cancel scope), and the audit entry must still be written
            self.ended = asyncio.ensure_future(self.on_finish(self.complete, self.sent))
        await self.slots.give_back(*self.holder)

    async def _watchdog(self) -> None:
        stall = self.stall_seconds
        loop = asyncio.get_running_loop()
        while not self.finished:
            await asyncio.sleep(min(stall / 4, 1.0))
            if self._handed is not None and loop.time() - self._handed > stall:
                await self.finish()

    async def chunks(self) -> AsyncIterator[bytes]:
        guard = asyncio.create_task(self._watchdog())
        try:
            while not self.finished:
                self._handed = None  # waiting on the sampler is not the client's stall
                chunk = await self._piece()
                if chunk is None:
                    self.complete = True  # the sampler's whole output went out
                    break
                self._handed = asyncio.get_running_loop().time()
                yield chunk
                self.sent += len(chunk)
        finally:
            guard.cancel()
            await self.finish()

    async def _piece(self) -> bytes | None:
        """The file's next bytes (at most a chunk), or None at its closing frame."""
        try:
            if not self._left:
                self._left = int.from_bytes(await self.reader.readexactly(FRAME_HEADER), "big")
                if not self._left:
                    return None
            piece = await self.reader.readexactly(min(self._left, CHUNK_BYTES))
        except asyncio.IncompleteReadError:
            logger.warning("the sampler stopped mid-stream after %d bytes", self.sent)
            raise SamplerEndedShort(f"the sampler stopped after {self.sent} bytes") from None
        self._left -= len(piece)
        return piece

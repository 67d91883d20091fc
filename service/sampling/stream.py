"""One download's stream from its sampler to the client, and the slot it holds.

A client that stops reading blocks the HTTP send, not this code: a watchdog stops the
sampler once the client has taken nothing for ``stall_seconds`` and hands the slot on.
``finish`` is idempotent: the stream's end, the watchdog and the response's background
task all call it; its first call hands ``on_finish`` whether the sampler's whole output
went out and how many bytes did (the download's audit entry is written then).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from service.sampling.download_slots import DownloadSlots

__all__ = ["SampleStream"]

CHUNK_BYTES = 65536


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
                chunk = await self.reader.read(CHUNK_BYTES)
                if not chunk:
                    self.complete = True  # the sampler's whole output went out
                    break
                self._handed = asyncio.get_running_loop().time()
                yield chunk
                self.sent += len(chunk)
        finally:
            guard.cancel()
            await self.finish()

"""The API's side of the warm sampler (service.sampling.sampler_pool): start it, ask it for a file.

The pool starts on the first download, not with the app, so that an API that never
serves one never pays for torch; it is restarted if it died, and stopped with the app.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from service.sampling.sampler_pool import READY

__all__ = ["SamplerPool", "SamplerRefused", "SamplerUnavailable"]

logger = logging.getLogger(__name__)
START_SECONDS = 120


class SamplerRefused(Exception):
    """The sampler read the request and refused it before writing anything."""


class SamplerUnavailable(Exception):
    """The sampler could not be started or reached."""


class SamplerPool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def socket_path(self) -> str:
        assert self._dir is not None
        return str(Path(self._dir.name) / "sampler.sock")

    def ensure_started(self) -> str:
        """The socket of a running pool, starting one if there is none (blocking)."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                return self.socket_path
            if self._process is not None:
                code = self._process.returncode
                logger.warning("sampler pool exited (%s); starting another", code)
            # a short directory of its own: Unix socket paths are limited to ~100 bytes
            self._dir = self._dir or tempfile.TemporaryDirectory(prefix="sanitas-")
            process = subprocess.Popen(
                [sys.executable, "-m", "service.sampling.sampler_pool", self.socket_path],
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
            )
            assert process.stdout is not None
            line = _readline(process.stdout, START_SECONDS)
            if line != READY:
                process.kill()
                process.wait()
            process.stdout.close()
            if line != READY:
                raise SamplerUnavailable("the sampler pool did not start")
            self._process = process
            return self.socket_path

    async def open(
        self, request: dict[str, Any]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection whose reader yields the file; SamplerRefused if it refused.

        A pool killed a moment ago may not be reaped yet: it still looks alive and its
        socket may even accept, then the connection drops before any answer. Then the
        dead pool is collected and the request tried once more on a fresh one.
        """
        for attempt in range(2):
            path = await asyncio.to_thread(self.ensure_started)
            try:
                reader, writer = await asyncio.open_unix_connection(path, limit=1 << 20)
                writer.write(json.dumps(request).encode() + b"\n")
                await writer.drain()
                status = await reader.read(1)
            except OSError as e:
                logger.warning("sampler pool unreachable (%s), attempt %d", e, attempt + 1)
                await asyncio.to_thread(self._collect_dead)
                continue
            if status == b"+":
                return reader, writer
            reason = (await reader.read(4096)).decode(errors="replace").strip()
            writer.close()
            if status == b"-":
                raise SamplerRefused(reason or "no rows produced")
            await asyncio.to_thread(self._collect_dead)
        raise SamplerUnavailable("the sampler pool stopped before answering, twice")

    def _collect_dead(self) -> None:
        """Reap a pool that dropped a connection unanswered; kill it if it lingers."""
        with self._lock:
            if self._process is None:
                return
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def stop(self) -> None:
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
            if self._dir is not None:
                self._dir.cleanup()
                self._dir = None


def _readline(stream: Any, seconds: float) -> bytes:
    """One line from a child's pipe, or b"" after ``seconds`` (a hung start)."""
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(seconds)
    return result[0] if result else b""

"""A warm sampler: one process imports torch once, then forks a child per download.

A fresh ``python -m service.sampling.sample_process`` per download paid the torch import (about
2 s of CPU) every time; under load those imports took the CPU from every other request.
Here the API (which never imports torch) starts ``python -m service.sampling.sampler_pool SOCKET``
once, on the first download; each download connects to the Unix socket, sends one JSON
line, and the forked child streams the answer back on the same connection:

- ``+`` and then the file's bytes in frames (a 4-byte big-endian length, then that many
  bytes), closed by an empty frame once the whole file is written, or
- ``-`` and then a one-line reason (a where= value the model cannot hold, say).

The closing frame is how the API tells a finished file from a child that died: a
child killed or failed mid-stream closes the connection without it, and the API then
cuts the HTTP response (no closing chunk, so the client sees a truncated transfer, not
a short file that looks whole) and audits the download as incomplete. The pool exits
when its parent (the API) is gone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
import warnings
from typing import Any, BinaryIO

from service.log_safety import configure_logging

__all__ = ["READY", "serve"]

READY = b"ready\n"
MAX_REQUEST = 65_536
FRAME_HEADER = 4  # bytes of a frame's length
MAX_FRAME = 1 << 24  # a longer write (an NPZ of many images) goes out as several frames
END_OF_FILE = bytes(FRAME_HEADER)  # the empty frame: the file is whole
logger = logging.getLogger(__name__)


class _Framed:
    """Writes ``+`` before the first byte, so the caller knows sampling started, then
    each write as frames; ``end`` writes the closing frame."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.started = raw, False

    def write(self, data: bytes) -> int:
        view = memoryview(data).cast("B")
        if view.nbytes and not self.started:
            self._start()
        for at in range(0, view.nbytes, MAX_FRAME):
            frame = view[at : at + MAX_FRAME]
            self.raw.write(frame.nbytes.to_bytes(FRAME_HEADER, "big"))
            self.raw.write(frame)
        return view.nbytes

    def end(self) -> None:
        """The whole file is written (n rows of nothing is a whole file too)."""
        if not self.started:
            self._start()
        self.raw.write(END_OF_FILE)

    def _start(self) -> None:
        self.raw.write(b"+")
        self.started = True

    def flush(self) -> None:
        self.raw.flush()

    # pyarrow and zipfile ask a sink these
    def tell(self) -> int:
        raise OSError("not seekable")

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self.raw.closed


def _request(conn: socket.socket) -> dict[str, Any]:
    buffer = b""
    while b"\n" not in buffer:
        part = conn.recv(4096)
        if not part or len(buffer) > MAX_REQUEST:
            raise ValueError("no complete request line")
        buffer += part
    return json.loads(buffer.split(b"\n", 1)[0])


def _handle(conn: socket.socket) -> None:
    """In the forked child: sample what the request names into the connection."""
    from service.sampling.sample_process import write_samples
    from training.errors import TrainingError

    out = conn.makefile("wb")
    framed = _Framed(out)
    try:
        request = _request(conn)
        write_samples(
            request["model_dir"], int(request["n"]), framed,  # type: ignore[arg-type]
            fmt=request.get("format", "csv"), where=request.get("where") or {},
            seed=request.get("seed"), label=request.get("label"),
        )  # fmt: skip
        framed.end()
    except TrainingError as e:
        if not framed.started:
            out.write(f"-{type(e).__name__}: {e}".encode())
    except BrokenPipeError:
        pass  # the client went away; nothing to tell
    except Exception:
        logger.exception("sampler child failed")
        if not framed.started:
            out.write(b"-internal sampler error (see the server log)")
    finally:
        with contextlib.suppress(OSError):
            out.close()
        conn.close()


def _preload() -> None:
    """Import what a download needs (about 0.8 s the first time), once, for every child.

    Only imports: a torch op here would start OpenMP threads, which a fork does not
    carry safely into the children.
    """
    import importlib

    for name in (
        "torch", "safetensors.torch", "training.generators", "training.images",
        "pyarrow.csv", "pyarrow.parquet", "pyarrow.pandas_compat",
        "service.sampling.sample_process",
    ):  # fmt: skip
        importlib.import_module(name)


def serve(path: str) -> None:
    """Accept downloads on ``path`` until the parent process goes away."""
    warnings.filterwarnings("ignore")
    _preload()
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)
    listener.bind(path)
    listener.listen(128)
    listener.settimeout(1.0)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reap themselves
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    while os.getppid() == parent:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            conn.settimeout(None)
            try:
                _handle(conn)
            finally:
                os._exit(0)
        conn.close()
    listener.close()


if __name__ == "__main__":
    configure_logging(logging.ERROR, sys.stderr)
    serve(sys.argv[1])

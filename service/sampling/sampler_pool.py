"""A warm sampler: one process imports torch once, then forks a child per download.

A fresh ``python -m service.sampling.sample_process`` per download paid the torch import (about
2 s of CPU) every time; under load those imports took the CPU from every other request.
Here the API (which never imports torch) starts ``python -m service.sampling.sampler_pool SOCKET``
once, on the first download; each download connects to the Unix socket, sends one JSON
line, and the forked child streams the answer back on the same connection:

- ``+`` and then the file's bytes, until the child closes the connection, or
- ``-`` and then a one-line reason (a where= value the model cannot hold, say).

A child that fails mid-stream closes early; the download then ends short, as a dead
sampler process did before. The pool exits when its parent (the API) is gone.
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
logger = logging.getLogger(__name__)


class _Framed:
    """Writes ``+`` before the first byte, so the caller knows sampling started."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.started = raw, False

    def write(self, data: bytes) -> int:
        if not self.started and data:
            self.raw.write(b"+")
            self.started = True
        return self.raw.write(data)

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
        if not framed.started:  # nothing to write (n rows of nothing): still a success
            out.write(b"+")
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

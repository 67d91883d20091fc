"""A real `sanitas serve` for the service benchmarks: keys, a free port, readiness."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

CLI = [sys.executable, "-m", "service.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_key(env: dict[str, str], role: str, project: str) -> str:
    done = subprocess.run(
        [*CLI, "keys", "create", "--role", role, "--project", project],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


@contextmanager
def serving(env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """(url, server pid) of a server on a free port, ready; terminated on exit."""
    port = free_port()
    log = Path(tempfile.gettempdir()) / f"sanitas-serve-{port}.log"
    print(f"server log: {log}", file=sys.stderr)
    server = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)], env=env,
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{url}/readyz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)

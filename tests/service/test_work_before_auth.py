"""Over real HTTP against `sanitas serve`: nothing is read, stored or logged before the
key is checked, every body is bounded while it streams, refused requests cannot fill
the audit log, and every response carries the security headers without a Server
banner (issue 19, B3, B7, B8)."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

pytestmark = pytest.mark.slow
HALF_GIGABYTE = 500 * 1024**2


@pytest.fixture
def server(tmp_path, request):
    yield from request.getfixturevalue("server_starter")(
        tmp_path, f"sqlite:///{tmp_path / 'guard.db'}", SANITAS_WORKER_THREADS="0",
        SANITAS_MAX_UPLOAD_BYTES=str(2 * 1024**2), SANITAS_BODY_READ_SECONDS="2",
        SANITAS_REFUSALS_PER_MINUTE="30", SANITAS_HEADER_READ_SECONDS="2",
    )  # fmt: skip


def _raw(server, head: str, *body: bytes, wait: float = 10.0) -> bytes:
    """Send a request line and headers, then the body's pieces one by one until the
    server answers (it may answer, and close, before the body is all sent)."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(head.encode() + b"\r\n")
        for piece in body:
            sock.settimeout(0.05)
            try:
                early = sock.recv(65536)
            except TimeoutError:
                early = b""
            if early:
                return early + sock.recv(65536)
            sock.settimeout(wait)
            sock.sendall(piece)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def _spooled(tmp_path) -> list:
    """Files in the data directory beyond the database and the key file."""
    kept = (".db", ".db-wal", ".db-shm", ".key")
    return [p for p in (tmp_path / "live").rglob("*") if p.is_file() and not p.name.endswith(kept)]


def test_a_junk_key_is_refused_before_any_body_byte(server, tmp_path):
    started = time.monotonic()
    answer = _raw(server, (
        "POST /v1/datasets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer junk\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {HALF_GIGABYTE}\r\n"
    ))  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"unknown or revoked API key" in answer
    assert time.monotonic() - started < 5 and _spooled(tmp_path) == []


def test_a_body_past_the_limit_is_refused_by_its_length_and_while_it_streams(server, tmp_path):
    owner = server.auth("owner")["Authorization"]
    answer = _raw(server, (
        f"POST /v1/datasets HTTP/1.1\r\nHost: x\r\nAuthorization: {owner}\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {HALF_GIGABYTE}\r\n"
    ))  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 413") and b"the limit is 2,097,152" in answer
    # chunked, no length declared: cut off once 2 MiB have arrived
    part = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="t.csv"\r\n'
            b"Content-Type: text/csv\r\n\r\n")  # fmt: skip
    chunks = [part, *[b"a,b\n" * 16384] * 40]
    chunked = [b"%x\r\n%s\r\n" % (len(c), c) for c in chunks]
    answer = _raw(server, (
        f"POST /v1/datasets HTTP/1.1\r\nHost: x\r\nAuthorization: {owner}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n"
    ), *chunked)  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    # a JSON route takes 1 MiB, not the upload limit
    big = httpx.post(f"{server.url}/v1/jobs", headers=server.auth("owner"),
                     content=b"{" + b" " * (2 * 1024**2) + b"}")  # fmt: skip
    assert big.status_code == 413 and "the limit is 1,048,576" in big.json()["detail"]


def test_a_body_that_stalls_is_answered_408(server):
    owner = server.auth("owner")["Authorization"]
    started = time.monotonic()
    answer = _raw(server, (
        f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: {owner}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n"
    ), b'{"dataset_id": ')  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert time.monotonic() - started < 8


def test_an_oversized_authorization_header_is_refused(server):
    r = httpx.post(f"{server.url}/v1/jobs", headers={"Authorization": "Bearer " + "a" * 10_000},
                   json={})  # fmt: skip
    assert r.status_code == 401 and "too long" in r.json()["detail"]
    huge = _raw(server, "GET /v1/datasets HTTP/1.1\r\nHost: x\r\nX-Pad: " + "a" * 100_000 + "\r\n")
    assert huge.startswith(b"HTTP/1.1 4"), huge[:100]  # h11 refuses headers past 16 KiB


def test_refused_requests_are_rate_limited_and_their_audit_rows_bounded(server):
    statuses = [
        httpx.get(f"{server.url}/v1/datasets/" + "p" * 3000,
                  headers={"Authorization": "Bearer junk"}).status_code
        for _ in range(60)
    ]  # fmt: skip
    assert statuses[:30] == [401] * 30 and set(statuses[30:]) == {429}
    r = httpx.get(f"{server.url}/v1/datasets", headers=server.auth("owner"))
    assert r.status_code == 200  # a good key is not refused, so not limited


def test_every_response_carries_the_security_headers_and_no_server_banner(server):
    for r in (
        httpx.get(f"{server.url}/healthz"),
        httpx.get(f"{server.url}/v1/datasets", headers=server.auth("owner")),
        httpx.get(f"{server.url}/v1/datasets"),
    ):
        assert "server" not in r.headers
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"


def test_docs_and_metrics_can_be_closed(tmp_path, request):
    starter = request.getfixturevalue("server_starter")
    for live in starter(tmp_path, f"sqlite:///{tmp_path / 'closed.db'}",
                        SANITAS_WORKER_THREADS="0", SANITAS_EXPOSE_DOCS="false",
                        SANITAS_EXPOSE_METRICS="false"):  # fmt: skip
        for path in ("/docs", "/openapi.json", "/metrics"):
            assert httpx.get(f"{live.url}{path}").status_code == 404, path
        assert httpx.get(f"{live.url}/healthz").status_code == 200


def test_half_sent_requests_are_closed_at_the_header_deadline(server):
    """Thirty connections that never finish their headers are closed after 2 s; the
    server answers everyone else meanwhile (uvicorn alone kept them open for good)."""
    host, port = server.url.removeprefix("http://").split(":")
    socks = []
    for _ in range(30):
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        socks.append(sock)
    try:
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        started = time.monotonic()
        closed = [sock.recv(1024) for sock in socks]  # b"" once the server closes
        assert closed == [b""] * 30 and time.monotonic() - started < 8
    finally:
        for sock in socks:
            sock.close()

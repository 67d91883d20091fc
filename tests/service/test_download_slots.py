"""One consumer cannot starve every download (issue 19, B6), over real HTTP: a key holds
at most its share of the samplers, and a download whose client reads nothing gives its
sampler back after the stall limit."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def released(tmp_path, request, fair):
    starter = request.getfixturevalue("server_starter")
    for live in starter(
        tmp_path, f"sqlite:///{tmp_path / 'slots.db'}", SANITAS_WORKER_THREADS="1",
        SANITAS_MAX_CONCURRENT_SAMPLERS="2", SANITAS_SAMPLERS_PER_KEY="1",
        SANITAS_SAMPLERS_PER_PROJECT="2", SANITAS_SAMPLER_WAIT_SECONDS="1",
        SANITAS_DOWNLOAD_STALL_SECONDS="3",
    ):  # fmt: skip
        owner = live.auth("owner")
        with httpx.Client(base_url=live.url, headers=owner, timeout=300) as http:
            table = fair.to_csv(index=False)
            ds = http.post(
                "/v1/datasets", data={"name": "fair", "epsilon_budget": "2"},
                files={"file": ("fair.csv", table)},
            ).json()  # fmt: skip
            job = http.post("/v1/jobs", json={"dataset_id": ds["id"], "epsilon": 1.0, "epochs": 1})
            job = job.json()
            deadline = time.monotonic() + 300
            while job["state"] in ("queued", "running") and time.monotonic() < deadline:
                time.sleep(1)
                job = http.get(f"/v1/jobs/{job['id']}").json()
            assert job["state"] == "succeeded", job["error"]
            reason = "one epoch: the slots are what is tested"
            release = http.post(
                "/v1/releases", json={"model_id": job["model_id"], "override_reason": reason}
            )
            assert release.status_code == 201, release.text
        yield live, release.json()["id"]


def _never_read(live, release_id: str) -> socket.socket:
    """A download of 5,000,000 rows whose client reads nothing (a tiny receive buffer,
    so the server's sends block within a few chunks)."""
    host, port = live.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(
        f"GET /v1/releases/{release_id}/samples?n=5000000 HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {live.auth('consumer')['Authorization']}\r\n\r\n".encode()
    )
    return sock


def _download(live, release_id: str, role: str) -> httpx.Response:
    return httpx.get(f"{live.url}/v1/releases/{release_id}/samples", params={"n": 100},
                     headers=live.auth(role), timeout=60)  # fmt: skip


def test_a_key_holds_its_share_and_a_stalled_reader_lets_go(released):
    live, release_id = released
    stalled = _never_read(live, release_id)
    try:
        time.sleep(1.0)  # the stalled download has its sampler
        second = _download(live, release_id, "consumer")
        assert second.status_code == 503 and "this key already holds 1" in second.json()["detail"]
        # the project's other key still gets the second slot
        owners = _download(live, release_id, "owner")
        assert owners.status_code == 200, owners.text
        time.sleep(5.0)  # past the 3 s stall limit: the never-read download let go
        again = _download(live, release_id, "consumer")
        assert again.status_code == 200, again.text
        assert len(again.text.splitlines()) == 101
    finally:
        stalled.close()

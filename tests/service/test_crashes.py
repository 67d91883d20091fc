"""kill -9 in the middle of things: nothing half-written, no plaintext left, state kept.

A real `sanitas serve` is killed (with its job process) mid-upload and mid-training,
then started again on the same data directory and database.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import httpx


def _kill_tree(pid: int) -> None:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in children.read_text().split()] if children.exists() else []
    for victim in [pid, *kids]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def _wait_dead(pid: int) -> None:
    for _ in range(200):
        try:
            os.waitpid(pid, os.WNOHANG)
            os.kill(pid, 0)
        except (ChildProcessError, ProcessLookupError):
            return
        time.sleep(0.05)


def _upload(server, body, name: str = "cps", budget: str = "2") -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/datasets",
        headers=server.auth("owner"),
        files={"file": (f"{name}.csv", body)},
        data={"name": name, "epsilon_budget": budget},
        timeout=600,
    )


def test_killed_mid_upload_leaves_nothing_and_keeps_what_was_committed(
    tmp_path, database_url, server_starter, cps_small
):
    first = server_starter(tmp_path, database_url, SANITAS_WORKER_THREADS="0")
    server = next(first)
    kept = _upload(server, cps_small.to_csv(index=False)).json()
    big = cps_small.to_csv(index=False, header=False).encode()
    body = cps_small.to_csv(index=False).encode() + big * 700  # about 110 MB
    datasets = Path(server.env["SANITAS_DATA_DIR"]) / "datasets"

    def doomed_upload() -> None:
        with contextlib.suppress(httpx.TransportError):  # the server dies under it
            _upload(server, body, "big")

    threading.Thread(target=doomed_upload, daemon=True).start()
    for _ in range(6000):  # the encrypted copy is being written: kill now
        if list(datasets.glob("*.partial")):
            break
        time.sleep(0.005)
    assert list(datasets.glob("*.partial")), "the upload never reached the encryption step"
    _kill_tree(server.pid)
    _wait_dead(server.pid)
    first.close()

    again = server_starter(tmp_path, database_url, SANITAS_WORKER_THREADS="0",
                           SANITAS_PARTIAL_STALE_SECONDS="0")  # fmt: skip
    server = next(again)
    listed = httpx.get(f"{server.url}/v1/datasets", headers=server.auth("owner")).json()["items"]
    assert [d["id"] for d in listed] == [kept["id"]]
    assert list(datasets.glob("*.partial")) == []
    assert len(list(datasets.iterdir())) == 1  # the committed dataset's encrypted file
    again.close()


def test_killed_mid_training_fails_the_job_keeps_the_charge_and_leaves_no_plaintext(
    tmp_path, database_url, server_starter, cps_small
):
    fast_lease = {"SANITAS_JOB_LEASE_SECONDS": "3", "SANITAS_HEARTBEAT_SECONDS": "0.5"}
    first = server_starter(tmp_path, database_url, SANITAS_WORKER_THREADS="1", **fast_lease)
    server = next(first)
    owner = server.auth("owner")
    ds = _upload(server, cps_small.to_csv(index=False)).json()
    job = httpx.post(
        f"{server.url}/v1/jobs", headers=owner, timeout=30,
        json={"dataset_id": ds["id"], "epsilon": 1.0, "epochs": 50},
    ).json()  # fmt: skip
    for _ in range(600):
        job = httpx.get(f"{server.url}/v1/jobs/{job['id']}", headers=owner).json()
        if job["progress"] > 0.1:
            break
        time.sleep(0.1)
    assert job["state"] == "running" and job["touched_data"], job
    work = Path(server.env["SANITAS_DATA_DIR"]) / "jobs" / job["id"]
    assert list(work.glob("data.*")), "the job's decrypted copy should exist while it trains"
    _kill_tree(server.pid)
    _wait_dead(server.pid)
    first.close()
    time.sleep(3.5)  # the lease runs out

    again = server_starter(tmp_path, database_url, SANITAS_WORKER_THREADS="1", **fast_lease)
    server = next(again)
    owner, auditor = server.auth("owner"), server.auth("auditor")
    job = httpx.get(f"{server.url}/v1/jobs/{job['id']}", headers=owner).json()
    assert job["state"] == "failed" and "heartbeat" in job["error"] and job["model_id"] is None
    budget = httpx.get(f"{server.url}/v1/datasets/{ds['id']}/budget", headers=owner).json()
    assert budget["epsilon_spent"] == 1.0  # it touched data: the charge stays
    assert httpx.get(f"{server.url}/v1/releases", headers=owner).json()["items"] == []
    assert list(work.glob("data.*")) == []  # no plaintext outlives the job
    models = Path(server.env["SANITAS_DATA_DIR"]) / "models"
    assert not models.exists() or list(models.iterdir()) == []
    assert httpx.get(f"{server.url}/v1/datasets/{ds['id']}", headers=auditor).status_code == 200
    again.close()

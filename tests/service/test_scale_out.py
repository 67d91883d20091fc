"""Scale-out as deployed: the API, two Celery workers and the scheduler, each its own
process, on PostgreSQL and Redis; jobs submitted over HTTP spread over both workers."""

import base64
import secrets
import subprocess
import sys
import time

import httpx
import pytest
import redis

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.xdist_group("redis-db-10"),
]
BROKER = "redis://127.0.0.1:6379/10"
JOBS = 4


@pytest.fixture
def deployment(tmp_path, postgres_url, server_starter):
    redis.Redis.from_url(BROKER).flushdb()
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    servers = server_starter(
        tmp_path, postgres_url, SANITAS_BROKER_URL=BROKER, SANITAS_ENCRYPTION_KEY=key,
        SANITAS_HEARTBEAT_SECONDS="0.5",
    )  # fmt: skip
    server = next(servers)
    cli = [sys.executable, "-m", "service.cli"]
    processes = {}
    for name, args in (("worker-a", ["worker"]), ("worker-b", ["worker"]),
                       ("scheduler", ["scheduler", "--every", "1"])):  # fmt: skip
        log = (tmp_path / f"{name}.log").open("wb")
        processes[name] = subprocess.Popen(
            [*cli, *args], env=server.env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield server, processes, tmp_path
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=60)
        next(servers, None)


def test_jobs_spread_over_two_workers_and_finish(deployment, cps_small):
    server, processes, logs = deployment
    owner = server.auth("owner")
    with httpx.Client(base_url=server.url, timeout=60) as http:
        dataset = http.post(
            "/v1/datasets", headers=owner,
            data={"name": "cps", "epsilon_budget": str(JOBS)},
            files={"file": ("cps.csv", cps_small.to_csv(index=False))},
        ).json()  # fmt: skip
        request = {"dataset_id": dataset["id"], "epsilon": 1.0, "epochs": 2}
        jobs = []
        for _ in range(JOBS):
            jobs.append(http.post("/v1/jobs", headers=owner, json=request).json()["id"])
        deadline = time.monotonic() + 240
        done: dict[str, dict] = {}
        while len(done) < JOBS and time.monotonic() < deadline:
            for job_id in set(jobs) - set(done):
                job = http.get(f"/v1/jobs/{job_id}", headers=owner).json()
                if job["state"] in ("succeeded", "failed", "cancelled"):
                    done[job_id] = job
            time.sleep(1)
        tails = {n: (logs / f"{n}.log").read_text()[-1500:] for n in processes}
        assert len(done) == JOBS, tails
        assert all(j["state"] == "succeeded" for j in done.values()), (done, tails)
        # a worker is "host:pid:thread": each job ran in one of the two worker processes
        pids = {int(j["worker"].split(":")[1]) for j in done.values()}
        workers = {processes["worker-a"].pid, processes["worker-b"].pid}
        assert pids == workers, (pids, workers)
        budget = http.get(f"/v1/datasets/{dataset['id']}/budget", headers=owner).json()
        assert budget["epsilon_spent"] == pytest.approx(JOBS * 1.0)
    assert processes["scheduler"].poll() is None, tails["scheduler"]  # ran throughout

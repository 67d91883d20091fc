"""Scale-out: the API queues on Redis, a real `sanitas worker` process trains the job."""

import base64
import os
import secrets
import subprocess
import sys
import time

import pytest
import redis

from service.app import create_app
from service.db import Role
from service.http.auth import create_key
from service.settings import Settings

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.xdist_group("redis-db-9"),
]
BROKER = "redis://127.0.0.1:6379/9"


@pytest.fixture
def scaled_out(tmp_path, postgres_url):
    database_url = postgres_url
    redis.Redis.from_url(BROKER).flushdb()
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    env = {
        **os.environ,
        "SANITAS_DATA_DIR": str(tmp_path / "data"),
        "SANITAS_BROKER_URL": BROKER,
        "SANITAS_DATABASE_URL": database_url,
        "SANITAS_ENCRYPTION_KEY": key,
        "SANITAS_HEARTBEAT_SECONDS": "0.5",
    }
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, broker_url=BROKER, encryption_key=key
    )
    app = create_app(settings, scheduler=False)
    try:
        yield app, tmp_path / "worker.log"
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_a_celery_worker_runs_the_job(scaled_out, cps_small):
    from fastapi.testclient import TestClient

    app, log = scaled_out
    with TestClient(app) as client:
        with app.state.sessions() as s:
            owner, _ = create_key(s, Role.OWNER, "alpha")
        auth = {"Authorization": f"Bearer {owner}"}
        ds = client.post(
            "/v1/datasets",
            headers=auth,
            data={"name": "cps", "epsilon_budget": "2"},
            files={"file": ("cps.csv", cps_small.to_csv(index=False))},
        ).json()
        job = client.post(
            "/v1/jobs", headers=auth, json={"dataset_id": ds["id"], "epsilon": 1.0, "epochs": 2}
        ).json()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            job = client.get(f"/v1/jobs/{job['id']}", headers=auth).json()
            if job["state"] in ("succeeded", "failed"):
                break
            time.sleep(1)
        assert job["state"] == "succeeded", (job, log.read_text()[-3000:])
        # the Celery worker process ran it, not this one
        assert job["worker"] and f":{os.getpid()}:" not in job["worker"]
        model = client.get(f"/v1/models/{job['model_id']}", headers=auth).json()
        assert model["privacy"]["epsilon"] <= 1.0

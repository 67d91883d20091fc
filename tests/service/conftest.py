"""The API against real databases: every test here runs on SQLite and on PostgreSQL.

PostgreSQL is the server on 127.0.0.1:5432 (database ``test``; .ci/run starts it).
Each test gets an empty schema of its own, migrated by Alembic.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from service.app import create_app
from service.db import Role
from service.http.auth import create_key
from service.migrate import upgrade
from service.settings import Settings

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sanitas.db'}"
        return
    yield from _postgres_schema()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _postgres_schema()


def _postgres_schema() -> Iterator[str]:
    """A fresh schema in the server's ``test`` database, migrated, dropped afterwards."""
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{PG_SERVER}?options=-csearch_path%3D{schema}"
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@dataclass
class Api:
    client: TestClient
    keys: dict[str, str]
    data_dir: Path

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def upload(
        self,
        frame: pd.DataFrame,
        *,
        name: str = "table",
        budget: float = 3.0,
        role: str = "owner",
        filename: str = "table.csv",
    ) -> dict:
        body = frame.to_csv(index=False).encode()
        if filename.endswith(".parquet"):
            buffer = io.BytesIO()
            frame.to_parquet(buffer)
            body = buffer.getvalue()
        r = self.client.post(
            "/v1/datasets",
            files={"file": (filename, body)},
            data={"name": name, "epsilon_budget": str(budget)},
            headers=self.auth(role),
        )
        assert r.status_code == 201, r.text
        return r.json()


def wait_for_job(api: Api, job_id: str, timeout: float = 300) -> dict:
    """Poll a job over the API until it ends (succeeded, failed or cancelled)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth("owner")).json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise TimeoutError(job)


def make_api(tmp_path: Path, database_url: str, **settings: object) -> Iterator[Api]:
    data_dir = tmp_path / "data"
    config = Settings(
        data_dir=data_dir, database_url=database_url, heartbeat_seconds=0.5, **settings
    )
    app = create_app(config, scheduler=False)
    with TestClient(app) as client:
        keys = {}
        with app.state.sessions() as s:
            for role in ("owner", "consumer", "auditor"):
                keys[role], _ = create_key(s, Role(role), "alpha")
            keys["admin"], _ = create_key(s, Role.ADMIN, None)
            keys["other_owner"], _ = create_key(s, Role.OWNER, "beta")
        yield Api(client, keys, data_dir)


@pytest.fixture
def api_factory(tmp_path, database_url):
    """Build an app with non-default settings (closed at the end of the test)."""
    made = []

    def build(**settings: object) -> Api:
        gen = make_api(tmp_path / f"app{len(made)}", database_url, **settings)
        made.append(gen)
        return next(gen)

    yield build
    for gen in made:
        gen.close()


@pytest.fixture
def api(tmp_path, database_url) -> Iterator[Api]:
    """The app with no worker thread: jobs stay queued (routes, budget, auth)."""
    yield from make_api(tmp_path, database_url, worker_threads=0)


@pytest.fixture
def working_api(tmp_path, database_url) -> Iterator[Api]:
    """The app with its in-process worker: jobs really train."""
    yield from make_api(tmp_path, database_url, worker_threads=1)


@pytest.fixture(scope="session")
def cps_small(cps) -> pd.DataFrame:
    return cps.drop(columns=["rownames"]).sample(3_000, random_state=4)


@dataclass
class LiveServer:
    url: str
    keys: dict[str, str]
    env: dict[str, str]
    pid: int = 0

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(tmp_path: Path, database_url: str, **env: str) -> Iterator[LiveServer]:
    """`sanitas serve` in its own process, on a free port, over real HTTP."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    environment = {
        **os.environ,
        "SANITAS_DATA_DIR": str(tmp_path / "live"),  # the same on a restart
        "SANITAS_DATABASE_URL": database_url,
        **env,
    }
    cli = [sys.executable, "-m", "service.cli"]
    keys = {}
    for role, project in (("owner", "alpha"), ("consumer", "alpha"), ("auditor", "alpha")):
        done = subprocess.run(
            [*cli, "keys", "create", "--role", role, "--project", project],
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
        keys[role] = done.stdout.strip()
    port = _free_port()
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port)], env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError((tmp_path / "server.log").read_text())
        yield LiveServer(url, keys, environment, server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def live_server(tmp_path, database_url) -> Iterator[LiveServer]:
    """No worker threads: jobs stay queued, so only the API is measured."""
    yield from start_server(tmp_path, database_url, SANITAS_WORKER_THREADS="0")


@pytest.fixture
def server_starter():
    return start_server

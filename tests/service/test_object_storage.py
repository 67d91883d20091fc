"""Datasets, models and reports in an S3-compatible bucket (moto's S3 server on loopback,
a real HTTP S3 API): ciphertext only in the bucket, nothing kept on the API's disk
but its cache, and a second API replica with an empty disk serves the same release."""

from __future__ import annotations

import base64
import io
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pandas as pd
import pytest

from service.settings import Settings
from service.storage.encrypted import MAGIC
from service.storage.object_store import ObjectStoreError
from tests.service.conftest import wait_for_job

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
CREDENTIALS = {"key": "sanitas-test", "secret": "sanitas-test"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("moto's S3 server did not start") from None
            time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def bucket(s3_endpoint) -> Iterator[tuple[object, dict]]:
    import s3fs

    options = {"endpoint_url": s3_endpoint, **CREDENTIALS}
    fs = s3fs.S3FileSystem(**options)
    name = "sanitas-" + secrets.token_hex(4)
    fs.mkdir(name)
    yield fs, {"storage_url": f"s3://{name}/prod", "storage_options": options}
    fs.rm(name, recursive=True)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_release_served_from_the_bucket_by_two_replicas(api_factory, bucket, cps_small):
    fs, storage = bucket
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    api = api_factory(worker_threads=1, encryption_key=key, **storage)
    root = storage["storage_url"].removeprefix("s3://")

    ds = api.upload(cps_small, budget=2.0)
    stored = fs.find(f"{root}/datasets")
    assert len(stored) == 1
    blob = fs.cat(stored[0])
    assert blob.startswith(MAGIC) and b"wage,education" not in blob  # ciphertext only
    assert not [p for p in (api.data_dir / "datasets").glob("*") if p.is_file()]

    job = api.client.post(
        "/v1/jobs", headers=api.auth("owner"),
        json={"dataset_id": ds["id"], "epsilon": 1.0, "epochs": 2},
    ).json()  # fmt: skip
    job = wait_for_job(api, job["id"])
    assert job["state"] == "succeeded", job["error"]
    model_id = job["model_id"]
    assert fs.exists(f"{root}/models/{model_id}/config.json")
    assert fs.exists(f"{root}/reports/{model_id}/report.html")
    assert not (api.data_dir / "models").exists()  # the worker's disk kept nothing
    report = api.client.get(f"/v1/models/{model_id}/report?format=json", headers=api.auth("owner"))
    assert report.status_code == 200 and b'"schema_version"' in report.content

    release = api.client.post(
        "/v1/releases", headers=api.auth("owner"),
        json={"model_id": model_id, "override_reason": "storage test: gates not at issue"},
    ).json()  # fmt: skip
    # a second replica: same database and bucket, an empty disk of its own
    replica = api_factory(worker_threads=0, encryption_key=key, **storage)
    assert not (replica.data_dir / "cache").exists()
    csv = replica.client.get(
        f"/v1/releases/{release['id']}/samples?n=800&seed=1", headers=replica.auth("consumer")
    )
    assert csv.status_code == 200, csv.text
    rows = pd.read_csv(io.StringIO(csv.text))
    assert len(rows) == 800 and set(rows.columns) == set(cps_small.columns)
    assert (replica.data_dir / "cache" / "models" / model_id / "config.json").is_file()


def test_a_shared_bucket_without_a_shared_key_is_refused(tmp_path):
    from service.storage.object_store import from_settings

    settings = Settings(data_dir=tmp_path, storage_url="s3://any/prefix")
    with pytest.raises(ObjectStoreError, match="SANITAS_ENCRYPTION_KEY"):
        from_settings(settings)

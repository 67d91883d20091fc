"""Over real HTTP against `sanitas serve`: owner uploads, trains, approves; the consumer
downloads synthetic rows and is refused the dataset, the model and the report."""

import io
import time

import httpx
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def serving(tmp_path, database_url, request):
    start_server = request.getfixturevalue("server_starter")
    yield from start_server(
        tmp_path, database_url, SANITAS_WORKER_THREADS="1", SANITAS_HEARTBEAT_SECONDS="0.5"
    )


def test_owner_trains_and_releases_consumer_downloads(serving, fair):
    url, owner, consumer = serving.url, serving.auth("owner"), serving.auth("consumer")
    with httpx.Client(base_url=url, timeout=120) as http:
        ds = http.post(
            "/v1/datasets",
            headers=owner,
            data={"name": "fair", "epsilon_budget": "2"},
            files={"file": ("fair.csv", fair.to_csv(index=False))},
        ).json()
        job = http.post(
            "/v1/jobs",
            headers=owner,
            json={
                "dataset_id": ds["id"],
                "epsilon": 1.0,
                "epochs": 3,
                "target_column": "rate_marriage",
            },
        ).json()
        assert job["state"] == "queued"
        deadline = time.monotonic() + 300
        while job["state"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(1)
            job = http.get(f"/v1/jobs/{job['id']}", headers=owner).json()
        assert job["state"] == "succeeded", job["error"]
        model = http.get(f"/v1/models/{job['model_id']}", headers=owner).json()
        body = {"model_id": model["id"]}
        if not model["passed"]:
            body["override_reason"] = "three epochs for speed; this test checks the plumbing"
        release = http.post("/v1/releases", headers=owner, json=body)
        assert release.status_code == 201, release.text

        with http.stream(
            "GET",
            f"/v1/releases/{release.json()['id']}/samples",
            params={"n": 20_000, "seed": 1},
            headers=consumer,
        ) as stream:
            assert stream.status_code == 200
            text = b"".join(stream.iter_bytes()).decode()
        rows = pd.read_csv(io.StringIO(text))
        assert len(rows) == 20_000 and set(rows.columns) == set(fair.columns)

        for path in (
            f"/v1/datasets/{ds['id']}",
            f"/v1/models/{model['id']}",
            f"/v1/models/{model['id']}/report",
        ):
            assert http.get(path, headers=consumer).status_code == 403, path

"""Idempotency-Key (issue 22): a client retrying a POST that charges or creates is
charged once and answered the first response, even when the copies race."""

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx


def _upload(http: httpx.Client, frame) -> dict:
    r = http.post(
        "/v1/datasets",
        files={"file": ("cps.csv", frame.to_csv(index=False).encode())},
        data={"name": "cps", "epsilon_budget": "3"},
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_a_retried_job_is_charged_once_even_when_the_copies_race(live_server, cps_small):
    owner = live_server.auth("owner")
    with httpx.Client(base_url=live_server.url, headers=owner, timeout=60) as http:
        ds = _upload(http, cps_small)
        key = str(uuid.uuid4())
        body = {"dataset_id": ds["id"], "epsilon": 0.5}

        def send(_: int) -> httpx.Response:
            return http.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(send, range(8)))
        assert {r.status_code for r in answers} == {202}, [r.text for r in answers]
        assert len({r.json()["id"] for r in answers}) == 1
        assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in answers) == 7
        budget = http.get(f"/v1/datasets/{ds['id']}/budget").json()
        assert budget["epsilon_spent"] == 0.5 and len(budget["ledger"]) == 1
        # the same key for another request is refused, naming the problem
        other = http.post(
            "/v1/jobs", json={**body, "epsilon": 1.0}, headers={"Idempotency-Key": key}
        )
        assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
        # without a key, or with a new one, a second job is a second charge
        fresh = http.post("/v1/jobs", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        assert fresh.status_code == 202 and fresh.json()["id"] != answers[0].json()["id"]
        assert http.get(f"/v1/datasets/{ds['id']}/budget").json()["epsilon_spent"] == 1.0


def test_a_retried_schedule_is_made_once(api, cps_small):
    ds = api.upload(cps_small)
    headers = {**api.auth("owner"), "Idempotency-Key": "nightly-cps-1"}
    body = {"dataset_id": ds["id"], "cron": "@daily", "job": {"epsilon": 0.5}}
    first = api.client.post("/v1/schedules", json=body, headers=headers)
    again = api.client.post("/v1/schedules", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    listed = api.client.get("/v1/schedules", headers=api.auth("owner")).json()["items"]
    assert len(listed) == 1
    # a key is the sender's: another key with the same Idempotency-Key acts afresh
    admin = {**api.auth("admin"), "Idempotency-Key": "nightly-cps-1"}
    assert (
        api.client.post("/v1/schedules", json=body, headers=admin).json()["id"]
        != (first.json()["id"])
    )

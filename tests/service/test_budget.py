"""The budget ledger: no dataset is ever trained past its budget."""

from concurrent.futures import ThreadPoolExecutor

import httpx


def test_over_budget_job_gets_409_with_the_remaining_budget(api, cps_small):
    ds = api.upload(cps_small, budget=1.5)
    ok = api.client.post(
        "/v1/jobs", json={"dataset_id": ds["id"], "epsilon": 1.0}, headers=api.auth("owner")
    )
    assert ok.status_code == 202 and ok.json()["state"] == "queued"
    over = api.client.post(
        "/v1/jobs", json={"dataset_id": ds["id"], "epsilon": 1.0}, headers=api.auth("owner")
    )
    assert over.status_code == 409
    assert over.json()["epsilon_remaining"] == 0.5 and "0.5" in over.json()["detail"]
    ledger = api.client.get(f"/v1/datasets/{ds['id']}/budget", headers=api.auth("auditor")).json()
    assert ledger["epsilon_spent"] == 1.0 and [e["epsilon"] for e in ledger["ledger"]] == [1.0]


def test_cancelling_a_queued_job_refunds_it(api, cps_small):
    ds = api.upload(cps_small, budget=1.0)
    job = api.client.post(
        "/v1/jobs", json={"dataset_id": ds["id"], "epsilon": 1.0}, headers=api.auth("owner")
    ).json()
    r = api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=api.auth("owner"))
    assert r.status_code == 202 and r.json()["state"] == "cancelled"
    ledger = api.client.get(f"/v1/datasets/{ds['id']}/budget", headers=api.auth("owner")).json()
    assert ledger["epsilon_remaining"] == 1.0
    assert [e["epsilon"] for e in ledger["ledger"]] == [1.0, -1.0]
    again = api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=api.auth("owner"))
    assert again.status_code == 409


def test_job_request_errors_are_named(api, cps_small):
    ds = api.upload(cps_small)
    cases = [
        ({"dataset_id": ds["id"], "epsilon": 0}, "epsilon"),
        ({"dataset_id": ds["id"], "epsilon": 1, "target_column": "salary"}, "salary"),
        ({"dataset_id": ds["id"], "epsilon": 1, "delta": 0.5}, "delta"),
        ({"dataset_id": "nope", "epsilon": 1}, "nope"),
    ]
    for body, needle in cases:
        r = api.client.post("/v1/jobs", json=body, headers=api.auth("owner"))
        assert r.status_code in (404, 422) and needle in r.json()["detail"], r.json()


def _upload(live_server, frame, *, budget: float) -> str:
    upload = httpx.post(
        f"{live_server.url}/v1/datasets",
        headers=live_server.auth("owner"),
        timeout=60,
        files={"file": ("cps.csv", frame.to_csv(index=False))},
        data={"name": "cps", "epsilon_budget": str(budget)},
    )
    assert upload.status_code == 201, upload.text
    return upload.json()["id"]


def test_twenty_concurrent_jobs_never_overspend(live_server, cps_small):
    """Over real HTTP, uvicorn's thread pool: the requests really race."""
    owner = live_server.auth("owner")
    dataset_id = _upload(live_server, cps_small, budget=3)

    def ask(_: int) -> int:
        r = httpx.post(
            f"{live_server.url}/v1/jobs",
            headers=owner,
            timeout=60,
            json={"dataset_id": dataset_id, "epsilon": 0.5},
        )
        return r.status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(ask, range(20)))
    assert sorted(codes) == [202] * 6 + [409] * 14
    ledger = httpx.get(f"{live_server.url}/v1/datasets/{dataset_id}/budget", headers=owner).json()
    assert ledger["epsilon_spent"] == ledger["ledger_total"] == 3.0
    assert len(ledger["ledger"]) == 6


def test_fifty_concurrent_random_charges_never_overspend_nor_overrefuse(live_server, cps_small):
    """50 racing requests with random epsilons (seeded): what is accepted fits the budget,
    the ledger sums to it, and every refusal was necessary (the budget only shrinks, so
    the final remainder is below each refused epsilon)."""
    import random

    owner = live_server.auth("owner")
    dataset_id = _upload(live_server, cps_small, budget=5)
    rng = random.Random(50)
    asked = [round(rng.uniform(0.05, 0.6), 3) for _ in range(50)]

    def ask(epsilon: float) -> int:
        r = httpx.post(
            f"{live_server.url}/v1/jobs",
            headers=owner,
            timeout=60,
            # a delta small enough that fifty fit the dataset's: epsilon is what races
            json={"dataset_id": dataset_id, "epsilon": epsilon, "delta": 1e-7},
        )
        return r.status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(pool.map(ask, asked))
    assert set(codes) <= {202, 409}
    accepted = [e for e, c in zip(asked, codes, strict=True) if c == 202]
    refused = [e for e, c in zip(asked, codes, strict=True) if c == 409]
    ledger = httpx.get(f"{live_server.url}/v1/datasets/{dataset_id}/budget", headers=owner).json()
    assert ledger["epsilon_spent"] <= 5.0 + 1e-9
    assert abs(ledger["ledger_total"] - ledger["epsilon_spent"]) < 1e-9
    assert abs(sum(accepted) - ledger["epsilon_spent"]) < 1e-9
    assert sorted(e["epsilon"] for e in ledger["ledger"]) == sorted(accepted)
    assert refused, "the trial must exhaust the budget (sum of asks exceeds it)"
    assert ledger["epsilon_remaining"] < min(refused)


def test_deltas_add_up_and_a_job_past_the_delta_budget_is_refused(api, cps_small):
    """Four jobs at the default delta spend four tenths of the dataset's delta (basic
    composition); a job asking for more delta than remains is refused, and a cancelled
    job gives its delta back (issue 19, A6)."""
    ds = api.upload(cps_small, budget=10.0)  # delta budget 1e-5 (the upload default)
    owner = api.auth("owner")
    jobs = [
        api.client.post("/v1/jobs", json={"dataset_id": ds["id"], "epsilon": 1.0}, headers=owner)
        for _ in range(4)
    ]
    assert [j.status_code for j in jobs] == [202] * 4
    assert {j.json()["spec"]["delta"] for j in jobs} == {1e-6}
    budget = api.client.get(f"/v1/datasets/{ds['id']}/budget", headers=api.auth("auditor")).json()
    assert budget["delta"] == 1e-5 and abs(budget["delta_spent"] - 4e-6) < 1e-15
    assert [e["delta"] for e in budget["ledger"]] == [1e-6] * 4
    over = api.client.post(
        "/v1/jobs", json={"dataset_id": ds["id"], "epsilon": 1.0, "delta": 7e-6}, headers=owner
    )
    assert over.status_code == 409 and "delta" in over.json()["detail"]
    assert abs(over.json()["delta_remaining"] - 6e-6) < 1e-15
    api.client.post(f"/v1/jobs/{jobs[0].json()['id']}/cancel", headers=owner)
    budget = api.client.get(f"/v1/datasets/{ds['id']}/budget", headers=owner).json()
    assert abs(budget["delta_spent"] - 3e-6) < 1e-15 and budget["ledger"][-1]["delta"] == -1e-6
    # DPConfig's own limit: a job delta the trainer would refuse is refused before a charge
    r = api.client.post(
        "/v1/jobs", json={"dataset_id": ds["id"], "epsilon": 1.0, "delta": 0.05}, headers=owner
    )
    assert r.status_code == 422 and "delta" in r.json()["detail"]

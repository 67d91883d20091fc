"""A job whose worker died: failed after the lease, re-queued only if it never touched data."""

from datetime import UTC, datetime, timedelta

from service.db import Job, JobState
from service.jobs.runner import reap_stale


def _queued_job(api, cps_small, budget=2.0):
    ds = api.upload(cps_small, budget=budget)
    r = api.client.post(
        "/v1/jobs", json={"dataset_id": ds["id"], "epsilon": 1.0}, headers=api.auth("owner")
    )
    return ds, r.json()["id"]


def _as_running(api, job_id, *, touched, minutes_ago):
    with api.client.app.state.sessions() as s:
        job = s.get(Job, job_id)
        job.state, job.touched_data, job.worker = JobState.RUNNING, touched, "host:1:2"
        job.heartbeat_at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
        s.commit()


def test_dead_worker_after_touching_data_fails_the_job_and_keeps_the_charge(api, cps_small):
    ds, job_id = _queued_job(api, cps_small)
    _as_running(api, job_id, touched=True, minutes_ago=10)
    assert reap_stale(api.client.app.state.ctx) == 1
    job = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth("owner")).json()
    assert job["state"] == "failed" and "stopped heartbeating" in job["error"]
    budget = api.client.get(f"/v1/datasets/{ds['id']}/budget", headers=api.auth("owner")).json()
    assert budget["epsilon_spent"] == 1.0


def test_dead_worker_before_touching_data_requeues(api, cps_small):
    _, job_id = _queued_job(api, cps_small)
    _as_running(api, job_id, touched=False, minutes_ago=10)
    assert reap_stale(api.client.app.state.ctx) == 1
    job = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth("owner")).json()
    assert job["state"] == "queued"


def test_a_live_worker_is_left_alone(api, cps_small):
    _, job_id = _queued_job(api, cps_small)
    _as_running(api, job_id, touched=True, minutes_ago=0)
    assert reap_stale(api.client.app.state.ctx) == 0

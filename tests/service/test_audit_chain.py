"""The audit log's hash chains (issue 22): entries written by concurrent requests to a
real server link up without forks or gaps, on SQLite and PostgreSQL; the export checks
offline; an edited, deleted or re-hashed entry is caught, each by the check that can.
"""

from __future__ import annotations

import csv
import json
import threading

import httpx
import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from service.audit_chain import GENESIS, link
from service.cli import app
from service.client import Client

pytestmark = pytest.mark.slow


def _verify(env, *args):
    done = CliRunner().invoke(app, ["audit", "verify", *args], env=env)
    return done.exit_code, done.output


def _busy(server, frame, writers=6):
    """Uploads (project alpha's chain) and refused keys (the '-' chain) at once."""
    owner = Client(server.url, server.keys["owner"])
    errors = []

    def upload(i):
        try:
            owner.upload(frame.iloc[i * 300 : (i + 1) * 300], name=f"cps{i}", epsilon_budget=1)
        except Exception as e:  # noqa: BLE001 - collected and asserted on below
            errors.append(e)

    def refused(i):
        httpx.get(f"{server.url}/v1/datasets", headers={"Authorization": f"Bearer san_x{i}"})

    threads = [threading.Thread(target=f, args=(i,)) for i in range(writers)
               for f in (upload, refused)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_chains_link_under_concurrent_writers_and_catch_tampering(live_server, cps_small, tmp_path):
    _busy(live_server, cps_small)
    auditor = Client(live_server.url, live_server.keys["auditor"])
    out = tmp_path / "audit.jsonl"
    auditor.export_audit_log(out)
    lines = out.read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert sum(e["action"] == "dataset.upload" for e in entries) == 6
    assert {e["chain"] for e in entries} == {"alpha"}  # an auditor sees its project only
    env = live_server.env
    code, said = _verify(env, "--file", str(out))
    assert code == 0, said
    summary = json.loads(said)
    assert summary["chains"]["alpha"]["complete_from_start"] and summary["entries"] == len(lines)

    # the server's own database: both chains, each reaching its head
    code, said = _verify(env)
    assert code == 0, said
    chains = json.loads(said)["chains"]
    assert chains["-"]["seq"] >= 6 and chains["alpha"]["seq"] == len(lines)

    # an export edited, cut or reordered fails, naming where
    edited = entries[2] | {"detail": {**entries[2]["detail"], "rows": 1}}
    for broken, needle in (
        ([*lines[:2], json.dumps(edited), *lines[3:]], "seq 3: hash does not match"),
        ([*lines[:2], *lines[3:]], "seq 4: follows seq 2"),
        ([lines[1], lines[0], *lines[2:]], "seq 1: follows seq 2"),
    ):
        out.write_text("\n".join(broken) + "\n")
        code, said = _verify(env, "--file", str(out))
        assert code == 1 and needle in said, said

    # a CSV export of the same entries, for reading
    rows = list(csv.DictReader(httpx.get(
        f"{live_server.url}/v1/audit-log/export", params={"format": "csv"},
        headers=live_server.auth("auditor"),
    ).text.splitlines()))  # fmt: skip
    assert [int(r["seq"]) for r in rows] == [e["seq"] for e in entries]
    assert [r["hash"] for r in rows] == [e["hash"] for e in entries]
    _tamper_with_the_database(live_server, auditor, env)


def _tamper_with_the_database(server, auditor, env):
    anchor = next(f"{h.chain}:{h.seq}:{h.hash}" for h in auditor.audit_heads()
                  if h.chain == "alpha")  # fmt: skip
    engine = create_engine(env["SANITAS_DATABASE_URL"])
    with engine.begin() as conn:  # an edit in place
        conn.execute(text("UPDATE audit_log SET actor = 'someone' "
                          "WHERE chain = 'alpha' AND seq = 2"))  # fmt: skip
    code, said = _verify(env)
    assert code == 1 and "'alpha' seq 2: hash does not match" in said, said

    # whoever can write the database re-hashes the chain after the edit: the links hold,
    # only the anchor written down before tells
    with engine.begin() as conn:
        rows = conn.execute(text(
            "SELECT id, chain, seq, at, actor, project_id, action, target, detail "
            "FROM audit_log WHERE chain = 'alpha' ORDER BY seq"
        )).mappings().all()  # fmt: skip
        head = GENESIS
        for row in rows:
            detail = row["detail"] if isinstance(row["detail"], dict) else json.loads(row["detail"])
            new = link(head, {**row, "detail": detail})
            conn.execute(text("UPDATE audit_log SET prev_hash = :p, hash = :h WHERE id = :i"),
                         {"p": head, "h": new, "i": row["id"]})  # fmt: skip
            head = new
        conn.execute(text("UPDATE audit_chains SET head = :h WHERE chain = 'alpha'"), {"h": head})
    assert _verify(env)[0] == 0
    code, said = _verify(env, "--anchor", anchor)
    assert code == 1 and "differs from the anchor" in said, said

    with engine.begin() as conn:  # the newest entry deleted: the links before it hold
        conn.execute(text("DELETE FROM audit_log WHERE chain = 'alpha' AND seq = "
                          "(SELECT MAX(seq) FROM audit_log WHERE chain = 'alpha')"))  # fmt: skip
    code, said = _verify(env)
    assert code == 1 and "its head is seq" in said, said
    engine.dispose()

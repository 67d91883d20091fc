"""A database made before the delta ledger (revision 0001) upgrades in place: each old
charge is given the dataset's delta (a job's delta was the dataset's then), refunds the
negative, and the dataset's delta_spent is their sum (issue 19, A6)."""

from __future__ import annotations

import json

from alembic import command
from sqlalchemy import create_engine, text

from service.migrate import alembic_config, upgrade


def _dataset(conn, *, spent: float) -> None:
    """Project p and dataset d as an old revision's rows."""
    conn.execute(text("INSERT INTO projects (id, created_at) VALUES ('p', CURRENT_TIMESTAMP)"))
    conn.execute(
        text(
            "INSERT INTO datasets (id, project_id, name, kind, epsilon_budget, delta, "
            "epsilon_spent, schema_json, created_at) VALUES ('d', 'p', 'cps', 'table', 3, "
            "0.00001, :spent, '{}', CURRENT_TIMESTAMP)"
        ),
        {"spent": spent},
    )


def test_revision_0001_upgrades_with_its_deltas_filled_in(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        _dataset(conn, spent=1)
        for epsilon in (1.0, 1.0, -1.0):
            conn.execute(
                text("INSERT INTO ledger (dataset_id, job_id, epsilon, reason, created_at) "
                     "VALUES ('d', 'j', :e, 'old', CURRENT_TIMESTAMP)"),
                {"e": epsilon},
            )  # fmt: skip
    upgrade(url)
    with engine.connect() as conn:
        deltas = conn.execute(text("SELECT delta FROM ledger ORDER BY id")).scalars().all()
        spent = conn.execute(text("SELECT delta_spent FROM datasets")).scalar_one()
    assert deltas == [1e-5, 1e-5, -1e-5]
    assert abs(spent - 1e-5) < 1e-15
    engine.dispose()


def test_revision_0002_upgrades_with_schedules_active_and_datasets_under_the_server_key(
    tmp_path,
):
    """Revision 0003 (issue 22): an existing schedule stays active and fires as before;
    an existing dataset keeps no data key, so its files stay read under the server key."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0002")
    engine = create_engine(url)
    with engine.begin() as conn:
        _dataset(conn, spent=0)
        conn.execute(text(
            "INSERT INTO schedules (id, project_id, dataset_id, cron, job, auto_release, "
            "created_by, created_at) VALUES ('s', 'p', 'd', '0 * * * *', '{}', 0, 'k', "
            "CURRENT_TIMESTAMP)"
        ))  # fmt: skip
    upgrade(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT state, fires_after FROM schedules")).one() == (
            "active",
            None,
        )
        assert conn.execute(text("SELECT data_key, erased_at FROM datasets")).one() == (None, None)
    engine.dispose()


def test_revision_0005_seals_the_audit_entries_it_finds_into_chains(tmp_path):
    """Revision 0006: entries written before the chains existed are sealed in the order
    they were written, per project; new ones continue each chain."""
    from service.audit_chain import check_database, make_sessionmaker
    from service.db import make_engine
    from service.domain.records import audit

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0005")
    engine = create_engine(url)
    with engine.begin() as conn:
        for i, project in enumerate(["p", None, "p", "q", "p"]):
            conn.execute(
                text("INSERT INTO audit_log (at, actor, project_id, action, target, detail) "
                     "VALUES (:at, 'k', :p, 'dataset.upload', :t, :d)"),
                {"at": f"2026-12-0{i + 1} 10:00:00.000000", "p": project, "t": f"d{i}",
                 "d": json.dumps({"rows": i})},
            )  # fmt: skip
    upgrade(url)
    sessions = make_sessionmaker(make_engine(url))
    with sessions() as s:
        audit(s, "k", "dataset.erase", project_id="p", target="d0")
        s.commit()
        found = check_database(s)
    assert found.ok, found.problems
    assert {c: seq for c, (seq, _) in found.heads.items()} == {"p": 4, "-": 1, "q": 1}
    with engine.connect() as conn:
        order = conn.execute(text("SELECT target FROM audit_log WHERE chain = 'p' ORDER BY seq"))
        assert order.scalars().all() == ["d0", "d2", "d4", "d0"]
    engine.dispose()

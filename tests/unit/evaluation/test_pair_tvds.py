"""Every pair's TVD on its own, so a benchmark can tell measured pairs from the rest."""

import numpy as np

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

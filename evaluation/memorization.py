"""Does the synthetic table copy its training rows?

Every figure has a real-data yardstick: holdout rows are what "not memorized" looks
like, so each synthetic statistic is reported beside the same statistic of holdout
rows against the training rows. Quadratic searches run on samples of at most
``max_rows`` rows per table, recorded in the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.neighbors import NearestNeighbors

from evaluation.distances import ROUNDING, MixedEncoding, nearest_distances
from evaluation.errors import MetricError

__all__ = ["Memorization", "distance_memorization", "exact_copy_rate", "memorization"]

TIE_TOLERANCE = 1e-6
QUANTILES = (0.01, 0.05, 0.5)
BOOTSTRAPS = 200
PERMUTATIONS = 499
NEIGHBOURS = 32


@dataclass(frozen=True)
class Memorization:
    sample_sizes: dict[str, int]  # rows used per table in the distance searches
    exact_copy_rate: float  # synthetic rows equal to some training row
    holdout_copy_rate: float  # holdout rows equal to some training row
    copy_z: float  # one-sided z of synthetic copy rate above the holdout's
    dcr_synthetic: np.ndarray  # distance of each synthetic row to its closest train row
    dcr_holdout: np.ndarray  # the same for holdout rows
    dcr_share: float  # synthetic rows closer to train than to holdout (ties count half)
    dcr_share_expected: float  # its value when nothing is memorized
    dcr_share_p_value: float  # one-sided permutation test against that value
    nndr_synthetic: np.ndarray  # nearest / second-nearest train distance ratio
    nndr_holdout: np.ndarray
    mia_auc: float  # members (train) vs non-members (holdout) by distance to synthetic
    mia_auc_ci: tuple[float, float]
    mia_roc: tuple[np.ndarray, np.ndarray]  # false and true positive rates

    def quantiles(self, values: np.ndarray) -> dict[str, float]:
        return {f"q{int(q * 100):02d}": float(np.quantile(values, q)) for q in QUANTILES}


def _row_keys(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return pd.util.hash_pandas_object(frame[columns].astype(str), index=False).to_numpy()


def exact_copy_rate(rows: pd.DataFrame, train: pd.DataFrame, columns: list[str]) -> float:
    """Share of ``rows`` that equal some training row on every column (missing == missing)."""
    if len(rows) == 0:
        raise MetricError("no rows to compare: exact-copy rate is undefined")
    return float(np.isin(_row_keys(rows, columns), _row_keys(train, columns)).mean())


def _copy_z(synthetic_rate: float, n_syn: int, holdout_rate: float, n_hold: int) -> float:
    """Two-proportion z statistic, pooled; 0 where both rates are 0 or both are 1."""
    pooled = (synthetic_rate * n_syn + holdout_rate * n_hold) / (n_syn + n_hold)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_syn + 1 / n_hold))
    return float((synthetic_rate - holdout_rate) / se) if se > 0 else 0.0


def _share(distances: np.ndarray, is_train: np.ndarray) -> float:
    """Share of query rows whose nearest train-labelled neighbour beats the nearest other.

    ``distances`` (N, k) sorted ascending; ``is_train`` (N, k) labels of those neighbours.
    A label absent from the k nearest counts as infinitely far; ties count one half.
    """
    far = np.inf
    to_train = np.where(is_train, distances, far).min(axis=1)
    to_other = np.where(~is_train, distances, far).min(axis=1)
    gap = to_other - to_train
    ties = np.abs(gap) <= TIE_TOLERANCE
    return float(((gap > TIE_TOLERANCE).sum() + 0.5 * ties.sum()) / len(gap))


def dcr_share_test(
    synthetic: np.ndarray, train: np.ndarray, holdout: np.ndarray, rng: np.random.Generator
) -> tuple[float, float]:
    """DCR share and its permutation p-value (one-sided: closer to train than chance).

    Train and holdout rows are exchangeable when nothing is memorized, so the null
    distribution comes from relabelling the pooled reference rows at random. A binomial
    test over synthetic rows would be wrong: rows of one dense region share their
    nearest neighbours, so their outcomes are not independent, and a smooth generator
    would fail it for no fault of its own.
    """
    pooled = np.vstack([train, holdout])
    labels = np.r_[np.ones(len(train), bool), np.zeros(len(holdout), bool)]
    k = min(NEIGHBOURS, len(pooled))
    search = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(pooled)
    distances, index = search.kneighbors(synthetic)
    distances = np.where(distances < ROUNDING, 0.0, distances)
    observed = _share(distances, labels[index])
    null = np.array([_share(distances, rng.permutation(labels)[index])
                     for _ in range(PERMUTATIONS)])  # fmt: skip
    p_value = (1 + int((null >= observed - 1e-12).sum())) / (1 + PERMUTATIONS)
    return observed, float(p_value)


def _sample(frame: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) <= n:
        return frame
    return frame.iloc[np.sort(rng.choice(len(frame), n, replace=False))]


def _auc_with_ci(
    members: np.ndarray, others: np.ndarray, rng: np.random.Generator
) -> tuple[float, tuple[float, float], tuple[np.ndarray, np.ndarray]]:
    labels = np.r_[np.ones(len(members)), np.zeros(len(others))]
    scores = np.r_[members, others]
    auc = float(roc_auc_score(labels, scores))
    boots = []
    for _ in range(BOOTSTRAPS):
        a = rng.integers(0, len(members), len(members))
        b = rng.integers(0, len(others), len(others))
        boots.append(roc_auc_score(labels, np.r_[members[a], others[b]]))
    fpr, tpr, _ = roc_curve(labels, scores)
    low, high = np.quantile(boots, [0.025, 0.975])
    return auc, (float(low), float(high)), (fpr, tpr)


def memorization(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    kinds: Mapping[str, str],
    *,
    max_rows: int = 20_000,
    seed: int = 0,
) -> Memorization:
    """Exact copies, distance to closest record, DCR share, NNDR and a distance MIA.

    DCR and NNDR look at every training row (up to ``max_rows``). The DCR share and the
    MIA use a training sample as large as the holdout sample, so that a synthetic table
    that memorizes nothing has a DCR share of 1/2 and the attack balanced classes.
    """
    columns = list(kinds)
    for name, table in (("train", train), ("holdout", holdout), ("synthetic", synthetic)):
        if len(table) < 2:
            raise MetricError(f"the {name} table needs at least 2 rows, got {len(table)}")
        absent = sorted(set(columns) - set(table.columns))
        if absent:
            raise MetricError(f"the {name} table lacks columns {absent}")
    rng = np.random.default_rng(seed)
    copy_rate = exact_copy_rate(synthetic, train, columns)
    holdout_rate = exact_copy_rate(holdout, train, columns)
    encoding = MixedEncoding.fit(train, kinds)
    return distance_memorization(
        encoding.transform(_sample(train, max_rows, rng)),
        encoding.transform(_sample(holdout, max_rows, rng)),
        encoding.transform(_sample(synthetic, max_rows, rng)),
        copy_rate=copy_rate,
        holdout_rate=holdout_rate,
        counts=(len(synthetic), len(holdout)),
        rng=rng,
    )


def distance_memorization(
    train: np.ndarray,
    holdout: np.ndarray,
    synthetic: np.ndarray,
    *,
    copy_rate: float,
    holdout_rate: float,
    counts: tuple[int, int],
    rng: np.random.Generator,
) -> Memorization:
    """The distance metrics on encoded rows (tables) or flattened pixels (images).

    ``counts`` are the full synthetic and holdout sizes behind the copy rates.
    """
    # DCR share and MIA: train and holdout of one size, so chance is exactly 1/2
    n_ref = min(len(train), len(holdout))
    t_all, h, s = train, holdout, synthetic
    t = t_all[np.sort(rng.choice(len(t_all), n_ref, replace=False))]

    syn_to_train = nearest_distances(s, t_all, k=2)
    hold_to_train = nearest_distances(h, t_all, k=2)
    dcr_syn, dcr_hold = syn_to_train[:, 0], hold_to_train[:, 0]

    share, p_value = dcr_share_test(s, t, h, rng)

    def nndr(d: np.ndarray) -> np.ndarray:
        return np.where(d[:, 1] > 0, d[:, 0] / np.maximum(d[:, 1], 1e-12), 0.0)

    # membership inference: a training row is "in" when a synthetic row lies close by
    member_d = nearest_distances(t, s, k=1)[:, 0]
    other_d = nearest_distances(h, s, k=1)[:, 0]
    auc, ci, roc = _auc_with_ci(-member_d, -other_d, rng)
    return Memorization(
        sample_sizes={
            "train": len(t_all),
            "holdout": len(h),
            "synthetic": len(s),
            "balanced_reference": n_ref,
        },
        exact_copy_rate=copy_rate,
        holdout_copy_rate=holdout_rate,
        copy_z=_copy_z(copy_rate, counts[0], holdout_rate, counts[1]),
        dcr_synthetic=dcr_syn,
        dcr_holdout=dcr_hold,
        dcr_share=float(share),
        dcr_share_expected=0.5,
        dcr_share_p_value=p_value,
        nndr_synthetic=nndr(syn_to_train),
        nndr_holdout=nndr(hold_to_train),
        mia_auc=auc,
        mia_auc_ci=ci,
        mia_roc=roc,
    )

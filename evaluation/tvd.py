"""Total variation distance on every column and every pair of columns.

sdmetrics' Column Pair Trends averages only the pairs whose real association passes
0.3, so a generator that loses every weak dependency, or a deterministic pair stored
as two columns, can score well there. These figures count every pair alike: numerics
at 20 quantile bins of the real column (missing its own bin), datetimes as numbers,
categories as values.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["TVDScores", "pair_tvds", "tvd_scores"]

QUANTILE_BINS = 20


@dataclass(frozen=True)
class TVDScores:
    one_way: float  # mean over columns
    two_way: float  # mean over all pairs
    worst_pair: tuple[str, str] | None
    worst_pair_tvd: float


def _as_numbers(values: pd.Series) -> np.ndarray:
    """Numbers as floats; datetimes (zoned or not) as epoch seconds; NaN where missing."""
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.to_datetime(values, errors="coerce", utc=True)
        seconds = stamps.astype("int64").to_numpy(dtype=float) / 1e9
        return np.where(stamps.isna().to_numpy(), np.nan, seconds)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def _codes(real: pd.Series, synthetic: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """Both columns as small integer codes over one shared domain. Datetimes count as
    numbers: as values, every stamp of MplsStops' (to the second) was its own category,
    and even the real holdout scored TVD 1.0 against the training rows."""
    is_date = pd.api.types.is_datetime64_any_dtype(real)
    if is_date or (pd.api.types.is_numeric_dtype(real) and not pd.api.types.is_bool_dtype(real)):
        r = _as_numbers(real)
        s = _as_numbers(synthetic)
        finite = r[np.isfinite(r)]
        if finite.size and np.unique(finite).size > QUANTILE_BINS:
            cut = np.unique(np.quantile(finite, np.linspace(0, 1, QUANTILE_BINS + 1)))[1:-1]

            def code(x: np.ndarray) -> np.ndarray:
                return np.where(np.isnan(x), len(cut) + 1, np.searchsorted(cut, x, "right"))

            return code(r), code(s), len(cut) + 2
    # categories (and numerics of few values) as values; unseen synthetic values share one
    r_text = real.astype("string").fillna("\0missing")
    s_text = synthetic.astype("string").fillna("\0missing")
    domain = {v: k for k, v in enumerate(pd.unique(r_text))}
    unseen = len(domain)
    return (
        r_text.map(domain).to_numpy(dtype=np.int64),
        s_text.map(domain).fillna(unseen).to_numpy(dtype=np.int64),
        unseen + 1,
    )


def _tvd(a: np.ndarray, b: np.ndarray, cells: int) -> float:
    pa = np.bincount(a, minlength=cells) / max(len(a), 1)
    pb = np.bincount(b, minlength=cells) / max(len(b), 1)
    return 0.5 * float(np.abs(pa - pb).sum())


def pair_tvds(real: pd.DataFrame, synthetic: pd.DataFrame) -> dict[tuple[str, str], float]:
    """The TVD of every pair of columns the two frames share, in column order: for
    telling the pairs a calibration measured from the rest."""
    return _pair_tvds(_coded(real, synthetic))


def tvd_scores(real: pd.DataFrame, synthetic: pd.DataFrame) -> TVDScores:
    """Mean 1-way and all-pairs 2-way TVD of ``synthetic`` against ``real``."""
    coded = _coded(real, synthetic)
    one = [_tvd(r, s, k) for r, s, k in coded.values()]
    pairs = _pair_tvds(coded)
    worst = max(pairs, key=pairs.__getitem__) if pairs else None
    return TVDScores(
        one_way=float(np.mean(one)) if one else 0.0,
        two_way=float(np.mean(list(pairs.values()))) if pairs else 0.0,
        worst_pair=worst if worst is not None and pairs[worst] > 0 else None,
        worst_pair_tvd=pairs[worst] if worst is not None else 0.0,
    )


def _coded(
    real: pd.DataFrame, synthetic: pd.DataFrame
) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """Every shared column as codes over one domain, in ``real``'s column order."""
    return {c: _codes(real[c], synthetic[c]) for c in real.columns if c in synthetic.columns}


def _pair_tvds(
    coded: dict[str, tuple[np.ndarray, np.ndarray, int]],
) -> dict[tuple[str, str], float]:
    pairs = {}
    for a, b in itertools.combinations(coded, 2):
        ra, sa, ka = coded[a]
        rb, sb, kb = coded[b]
        pairs[(a, b)] = _tvd(ra * kb + rb, sa * kb + sb, ka * kb)
    return pairs

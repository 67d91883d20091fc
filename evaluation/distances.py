"""A documented mixed-type encoding under which Euclidean distance is Gower-like.

Each column contributes a squared per-column distance in [0, ~1], and the distance
between two rows is the root mean over columns, so it reads as "a typical column
differs by this much" whatever the table's width:

- numeric and datetime: (x - median) / (q99 - q01) of the training column, so one
  robust range counts 1; a missing value sits at the median and sets a missing flag,
  which adds 1 against a present value;
- categorical and boolean: one-hot scaled by 1/sqrt(2), so a mismatch adds exactly 1;
  values beyond the training column's most frequent ``MAX_CATEGORIES`` share one slot.

Euclidean (not Manhattan) so nearest neighbours run on BLAS: a 30,000 x 30,000 search
takes seconds on two cores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from evaluation.errors import MetricError

__all__ = ["MixedEncoding", "nearest_distances"]

MAX_CATEGORIES = 256
NUMERIC_KINDS = ("numerical", "datetime")
ROUNDING = 1e-6


def _numbers(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = values.astype("int64").to_numpy(dtype=float)
        return np.where(values.isna().to_numpy(), np.nan, stamps)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


@dataclass
class MixedEncoding:
    kinds: Mapping[str, str]
    centers: dict[str, float] = field(default_factory=dict)
    scales: dict[str, float] = field(default_factory=dict)
    has_missing: dict[str, bool] = field(default_factory=dict)
    categories: dict[str, pd.Index] = field(default_factory=dict)

    @classmethod
    def fit(cls, train: pd.DataFrame, kinds: Mapping[str, str]) -> MixedEncoding:
        if len(train) == 0:
            raise MetricError("the training table is empty: distances are undefined")
        enc = cls(kinds=dict(kinds))
        for name, kind in kinds.items():
            if kind in NUMERIC_KINDS:
                x = _numbers(train[name])
                finite = x[np.isfinite(x)]
                if len(finite) == 0:
                    enc.centers[name], enc.scales[name] = 0.0, 1.0
                else:
                    lo, mid, hi = np.quantile(finite, [0.01, 0.5, 0.99])
                    spread = hi - lo if hi > lo else float(np.ptp(finite)) or 1.0
                    enc.centers[name], enc.scales[name] = float(mid), float(spread)
                enc.has_missing[name] = bool(np.isnan(x).any())
            else:
                top = train[name].astype(str).value_counts().index[:MAX_CATEGORIES]
                enc.categories[name] = pd.Index(top)
        return enc

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        missing = sorted(set(self.kinds) - set(frame.columns))
        if missing:
            raise MetricError(f"table lacks columns {missing}")
        parts: list[np.ndarray] = []
        for name, kind in self.kinds.items():
            if kind in NUMERIC_KINDS:
                x = (_numbers(frame[name]) - self.centers[name]) / self.scales[name]
                absent = np.isnan(x)
                parts.append(np.where(absent, 0.0, x)[:, None])
                if self.has_missing[name] or absent.any():
                    parts.append(absent.astype(float)[:, None])
            else:
                cats = self.categories[name]
                codes = cats.get_indexer(frame[name].astype(str))
                codes = np.where(codes < 0, len(cats), codes)  # unseen values share a slot
                onehot = np.zeros((len(frame), len(cats) + 1))
                onehot[np.arange(len(frame)), codes] = np.sqrt(0.5)
                parts.append(onehot)
        scale = 1.0 / np.sqrt(len(self.kinds))
        return np.hstack(parts) * scale


def nearest_distances(query: np.ndarray, reference: np.ndarray, k: int = 1) -> np.ndarray:
    """Distances from each query row to its ``k`` nearest reference rows.  (N, k)"""
    if len(reference) < k:
        raise MetricError(f"need at least {k} reference rows, got {len(reference)}")
    search = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(reference)
    distances, _ = search.kneighbors(query)
    # BLAS's |a|^2 - 2ab + |b|^2 leaves ~1e-8 where rows are equal: call that 0
    return np.where(distances < ROUNDING, 0.0, distances)

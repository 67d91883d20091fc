"""Aggregates the report plots are drawn from: binned marginals and pair associations.

The report is re-rendered from its JSON alone, so what a plot needs is computed here,
as aggregates (frequencies, association strengths), never as rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from evaluation.fidelity import NUMERIC_BINS, _as_number

__all__ = ["association_matrix", "column_distributions"]

MAX_CATEGORIES = 20
Marginal = tuple[list[str], list[float], list[float]]  # bin labels, real share, synthetic share


def _numeric_marginal(real: np.ndarray, synthetic: np.ndarray) -> Marginal:
    finite = real[np.isfinite(real)]
    if len(finite) == 0:
        return ["missing"], [1.0], [float(np.isnan(synthetic).mean())]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, NUMERIC_BINS + 1)))
    labels = [f"{a:.4g}-{b:.4g}" for a, b in itertools.pairwise(edges)] or [f"{edges[0]:.4g}"]
    cut = edges[1:-1]

    def share(x: np.ndarray) -> list[float]:
        codes = np.searchsorted(cut, x[np.isfinite(x)], side="right")
        counts = np.bincount(codes, minlength=len(labels)).astype(float)
        out = list(counts / max(len(x), 1))
        if np.isnan(real).any() or np.isnan(synthetic).any():
            out.append(float(np.isnan(x).mean()))
        return out

    if np.isnan(real).any() or np.isnan(synthetic).any():
        labels = [*labels, "missing"]
    return labels, share(real), share(synthetic)


def _categorical_marginal(real: pd.Series, synthetic: pd.Series) -> Marginal:
    r, s = real.astype(str), synthetic.astype(str)
    top = list(r.value_counts().index[:MAX_CATEGORIES])
    rf, sf = r.value_counts(normalize=True), s.value_counts(normalize=True)
    labels = [str(c) for c in top]
    real_share = [float(rf.get(c, 0.0)) for c in top]
    syn_share = [float(sf.get(c, 0.0)) for c in top]
    if len(rf) > len(top) or set(sf.index) - set(top):
        labels.append("(other)")
        real_share.append(1.0 - sum(real_share))
        syn_share.append(1.0 - sum(syn_share))
    return labels, real_share, syn_share


def column_distributions(
    real: pd.DataFrame, synthetic: pd.DataFrame, kinds: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Per column: bin labels and the real and synthetic share in each bin."""
    out = []
    for name, kind in kinds.items():
        if kind in ("numerical", "datetime"):
            labels, r, s = _numeric_marginal(
                _as_number(real[name], kind), _as_number(synthetic[name], kind)
            )
        else:
            labels, r, s = _categorical_marginal(real[name], synthetic[name])
        out.append({"column": name, "kind": kind, "labels": labels, "real": r, "synthetic": s})
    return out


def _cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(table, (ai, bi), 1)
    k = min(table.shape) - 1
    if k == 0:
        return 0.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / np.where(expected > 0, expected, 1)).sum())
    return float(np.sqrt(chi2 / (table.sum() * k)))


def association_matrix(codes: pd.DataFrame) -> list[list[float]]:
    """Cramer's V between every pair of discretized columns (1 on the diagonal)."""
    names = list(codes.columns)
    v = np.eye(len(names))
    for i, j in itertools.combinations(range(len(names)), 2):
        v[i, j] = v[j, i] = _cramers_v(codes[names[i]].to_numpy(), codes[names[j]].to_numpy())
    return v.round(4).tolist()

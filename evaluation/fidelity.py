"""Fidelity of synthetic tables: the one module that imports sdmetrics.

Also the low-order marginal accuracy that MOSTLY AI publishes: 1 minus the mean total
variation distance over all 1-way and 2-way marginals of the discretized table.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evaluation.errors import MetricError

__all__ = ["QualityScores", "discretize", "marginal_accuracy", "quality_report", "sdtypes"]

logger = logging.getLogger(__name__)
NUMERIC_BINS = 10


@dataclass(frozen=True)
class QualityScores:
    overall: float
    column_shapes: float
    column_pair_trends: float
    details: pd.DataFrame


def sdtypes(real: pd.DataFrame, *, categorical_max_unique: int = 10) -> dict[str, str]:
    """sdmetrics types read off the real table's dtypes (the public schema)."""
    types: dict[str, str] = {}
    for name in real.columns:
        values = real[name]
        if pd.api.types.is_bool_dtype(values.dtype):
            types[name] = "boolean"
        elif pd.api.types.is_datetime64_any_dtype(values.dtype):
            types[name] = "datetime"
        elif pd.api.types.is_numeric_dtype(values.dtype):
            few = values.nunique() <= categorical_max_unique
            types[name] = "categorical" if few else "numerical"
        else:
            types[name] = "categorical"
    return types


def quality_report(
    real: pd.DataFrame, synthetic: pd.DataFrame, types: dict[str, str]
) -> QualityScores:
    """sdmetrics' single-table QualityReport (column shapes, pair trends)."""
    from sdmetrics.reports.single_table import QualityReport

    columns = list(types)
    missing = sorted(set(columns) - set(synthetic.columns))
    if missing:
        raise MetricError(f"synthetic table lacks columns {missing}")
    metadata = {"columns": {c: {"sdtype": t} for c, t in types.items()}}
    report = QualityReport()
    report.generate(real[columns], synthetic[columns], metadata, verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    return QualityScores(
        overall=float(report.get_score()),
        column_shapes=float(props["Column Shapes"]),
        column_pair_trends=float(props["Column Pair Trends"]),
        details=report.get_details("Column Shapes"),
    )


def _as_number(values: pd.Series, kind: str) -> np.ndarray:
    raw = values if kind == "numerical" else values.astype("int64")
    return pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)


def _bin_codes(values: np.ndarray, cut: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values), -1, np.searchsorted(cut, values, side="right"))


def discretize(
    real: pd.DataFrame, other: pd.DataFrame, types: dict[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables as category codes; numeric columns cut at the real table's deciles."""
    out_real, out_other = {}, {}
    for name, kind in types.items():
        if kind in ("numerical", "datetime"):
            rv, ov = _as_number(real[name], kind), _as_number(other[name], kind)
            cut = np.unique(np.nanquantile(rv, np.linspace(0, 1, NUMERIC_BINS + 1)))[1:-1]
            out_real[name], out_other[name] = _bin_codes(rv, cut), _bin_codes(ov, cut)
        else:
            r, o = real[name].astype(str), other[name].astype(str)
            cats = pd.Index(pd.unique(r))
            out_real[name], out_other[name] = cats.get_indexer(r), cats.get_indexer(o)
    return pd.DataFrame(out_real), pd.DataFrame(out_other)


def _tvd(a: pd.DataFrame, b: pd.DataFrame, cols: list[str]) -> float:
    pa = a.groupby(cols).size() / len(a)
    pb = b.groupby(cols).size() / len(b)
    joined = pd.concat([pa, pb], axis=1).fillna(0.0)
    return float(0.5 * (joined.iloc[:, 0] - joined.iloc[:, 1]).abs().sum())


def marginal_accuracy(
    real: pd.DataFrame, synthetic: pd.DataFrame, types: dict[str, str]
) -> dict[str, float]:
    """1 - mean TVD over 1-way and 2-way marginals of the discretized tables."""
    if len(synthetic) == 0:
        raise MetricError("synthetic table is empty: marginal accuracy is undefined")
    a, b = discretize(real, synthetic, types)
    names = list(types)
    one = [1 - _tvd(a, b, [c]) for c in names]
    two = [1 - _tvd(a, b, list(p)) for p in itertools.combinations(names, 2)]
    both = one + two
    return {
        "univariate": float(np.mean(one)),
        "bivariate": float(np.mean(two)) if two else float("nan"),
        "overall": float(np.mean(both)),
    }

"""ML utility: train on synthetic, test on real (TSTR) beside train-real-test-real."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score

from evaluation.errors import MetricError

__all__ = ["UtilityScore", "tstr"]


@dataclass(frozen=True)
class UtilityScore:
    target: str
    metric: str
    synthetic: float  # TSTR
    real: float  # TRTR


# HistGradientBoosting's limit on a categorical feature's values
MAX_FEATURE_CATEGORIES = 255


def _features(frame: pd.DataFrame, target: str, categories: dict[str, list[str]]) -> pd.DataFrame:
    """Dates as epoch seconds, text as categories (values outside ``categories``
    missing): HistGradientBoosting refused a date column (a category of 40,000 stamps)."""
    x = frame.drop(columns=[target]).copy()
    for name in x.columns:
        if pd.api.types.is_datetime64_any_dtype(x[name]):
            stamps = pd.to_datetime(x[name], errors="coerce")
            x[name] = (stamps - pd.Timestamp(0)).dt.total_seconds()
    for name, cats in categories.items():
        x[name] = pd.Categorical(x[name].astype(str), categories=cats)
    return x


def _top_categories(values: pd.Series) -> list[str]:
    """The most frequent values, as many as a categorical feature may hold."""
    counts = values.astype(str).value_counts()
    return sorted(counts.index[:MAX_FEATURE_CATEGORIES].tolist())


def _informative(x: pd.DataFrame, x_test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both without the features missing in every fitting row: such a feature teaches
    nothing, and HistGradientBoosting's binning fails on it ("window shape cannot be
    larger than input array shape"); a weak DP model can emit one."""
    empty = [c for c in x.columns if x[c].isna().all()]
    return x.drop(columns=empty), x_test.drop(columns=empty)


def tstr(
    train: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame,
    *,
    target: str,
    task: str,
    seed: int = 0,
) -> UtilityScore:
    """HistGradientBoosting fit on synthetic and on real train, both scored on holdout.

    ``task`` is ``binary`` (ROC AUC), ``multiclass`` (accuracy) or ``regression`` (R2).
    """
    if target not in synthetic.columns:
        raise MetricError(f"target={target!r} is not a synthetic column")
    object_cols = [
        c
        for c in train.columns
        if c != target
        and not pd.api.types.is_numeric_dtype(train[c])
        and not pd.api.types.is_datetime64_any_dtype(train[c])
    ]
    categories = {c: _top_categories(train[c]) for c in object_cols}
    # a holdout row without a target has nothing to be scored on ("nan" was once taken
    # for the positive class of MplsStops' personSearch: every AUC 0.5)
    holdout = holdout.dropna(subset=[target])
    scores = []
    chance = {"binary": 0.5, "multiclass": 0.0, "regression": 0.0}[task]
    for source in (synthetic, train):
        source = source.dropna(subset=[target])
        x, x_test = _informative(
            _features(source, target, categories), _features(holdout, target, categories)
        )
        if len(source) == 0 or x.shape[1] == 0:  # nothing to learn from: a blind guess
            scores.append(chance)
            continue
        y, y_test = source[target], holdout[target]
        if task == "regression":
            model = HistGradientBoostingRegressor(
                random_state=seed, categorical_features="from_dtype"
            )
            model.fit(x, y.astype(float))
            scores.append(float(r2_score(y_test.astype(float), model.predict(x_test))))
            continue
        labels = y.astype(str)
        if labels.nunique() < 2:
            scores.append(chance)
            continue
        clf = HistGradientBoostingClassifier(random_state=seed, categorical_features="from_dtype")
        clf.fit(x, labels)
        if task == "binary":
            positive = sorted(holdout[target].astype(str).unique())[-1]
            col = list(clf.classes_).index(positive) if positive in clf.classes_ else None
            proba = clf.predict_proba(x_test)[:, col] if col is not None else np.zeros(len(x_test))
            scores.append(float(roc_auc_score(y_test.astype(str) == positive, proba)))
        else:
            scores.append(float(accuracy_score(y_test.astype(str), clf.predict(x_test))))
    metric = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "r2"}[task]
    return UtilityScore(target=target, metric=metric, synthetic=scores[0], real=scores[1])

"""One call that runs every check on a synthetic table and returns the report's data.

The result is a plain JSON document (schema in evaluation/report/report.schema.json),
so a report can be re-rendered, diffed and archived without the real data.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from evaluation.audit import AuditResult
from evaluation.distributions import association_matrix, column_distributions
from evaluation.errors import MetricError
from evaluation.fidelity import discretize, quality_report, sdtypes
from evaluation.gates import release_gates
from evaluation.memorization import Memorization, memorization
from evaluation.result import Evaluation
from evaluation.spec import EvalSpec
from evaluation.utility import tstr

__all__ = ["REPORT_SCHEMA_VERSION", "Evaluation", "choose_targets", "evaluate"]

logger = logging.getLogger(__name__)
REPORT_SCHEMA_VERSION = "1.0"
HISTOGRAM_BINS = 30
ROC_POINTS = 101


def choose_targets(frame: pd.DataFrame, kinds: Mapping[str, str], limit: int = 3) -> list[str]:
    """Columns worth predicting: categorical with 2-20 classes first, then numeric."""
    few = [c for c, k in kinds.items() if k != "numerical" and 2 <= frame[c].nunique() <= 20]
    numeric = [c for c, k in kinds.items() if k == "numerical"]
    return [*reversed(few), *numeric][:limit]


def _task(frame: pd.DataFrame, target: str, kind: str, task: str) -> str:
    if task != "auto":
        return task
    if kind == "numerical":
        return "regression"
    return "binary" if frame[target].nunique() == 2 else "multiclass"


def _histogram(a: np.ndarray, b: np.ndarray) -> dict[str, list[float]]:
    top = float(np.quantile(np.r_[a, b], 0.99)) or 1.0
    edges = np.linspace(0.0, top, HISTOGRAM_BINS + 1)
    count = [np.histogram(np.clip(x, 0, top), edges)[0] / max(len(x), 1) for x in (a, b)]
    return {
        "edges": edges.round(6).tolist(),
        "synthetic": count[0].tolist(),
        "holdout": count[1].tolist(),
    }


def _memorization_data(m: Memorization) -> dict[str, Any]:
    fpr, tpr = m.mia_roc
    grid = np.linspace(0, 1, ROC_POINTS)
    return {
        "sample_sizes": m.sample_sizes,
        "exact_copy_rate": m.exact_copy_rate,
        "holdout_copy_rate": m.holdout_copy_rate,
        "copy_rate_z": m.copy_z,
        "dcr": {
            "synthetic": m.quantiles(m.dcr_synthetic),
            "holdout": m.quantiles(m.dcr_holdout),
            "histogram": _histogram(m.dcr_synthetic, m.dcr_holdout),
        },
        "dcr_share": m.dcr_share,
        "dcr_share_expected": m.dcr_share_expected,
        "dcr_share_p_value": m.dcr_share_p_value,
        "nndr": {
            "synthetic": m.quantiles(m.nndr_synthetic),
            "holdout": m.quantiles(m.nndr_holdout),
        },
        "mia": {
            "auc": m.mia_auc,
            "ci": list(m.mia_auc_ci),
            "roc": {"fpr": grid.tolist(), "tpr": np.interp(grid, fpr, tpr).round(5).tolist()},
        },
    }


def _claimed_epsilon(privacy: Mapping[str, Any] | None) -> float | None:
    if not privacy or not privacy.get("dp"):
        return None
    eps = privacy.get("epsilon")
    return float(eps) if eps is not None else None


def evaluate(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    kinds: Mapping[str, str] | None = None,
    spec: EvalSpec | None = None,
    *,
    privacy: Mapping[str, Any] | None = None,
    audit: AuditResult | None = None,
    training: Mapping[str, Any] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> Evaluation:
    """Fidelity, utility, memorization, attack risks and gates of ``synthetic``.

    ``kinds`` maps column -> sdmetrics sdtype (categorical, numerical, datetime,
    boolean); by default read off ``train``. ``privacy`` is the model's privacy
    accounting, ``audit`` the result of an audited training run, ``training`` the
    model's training record (loss curve); each is shown when given. ``on_step`` hears
    each step as it starts: a wide table's evaluation takes minutes.
    """
    spec = spec or EvalSpec()
    kinds = dict(kinds or sdtypes(train))
    _check_frames(kinds, train=train, holdout=holdout, synthetic=synthetic)
    # columns outside ``kinds`` (excluded IDs, free text) were never modelled: not compared
    columns = list(kinds)
    train, holdout, synthetic = train[columns], holdout[columns], synthetic[columns]
    watch = _Stopwatch(on_step)
    with watch("fidelity"):
        fidelity, quality = _fidelity(train, synthetic, kinds)
    with watch("utility"):
        utility = _utility(train, holdout, synthetic, kinds, spec)
    with watch("memorization"):
        mem = memorization(train, holdout, synthetic, kinds, max_rows=spec.max_rows, seed=spec.seed)
    risks: list[dict[str, Any]] = []
    if spec.risks:
        with watch("risks"):
            risks = _risks(train, holdout, synthetic, kinds, spec, utility)
    claimed = _claimed_epsilon(privacy)
    gates = release_gates(
        memorization=mem, quality=quality.overall, audit=audit, claimed_epsilon=claimed,
        thresholds=spec.thresholds,
    )  # fmt: skip
    data = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": _sizes(kinds, train=train, holdout=holdout, synthetic=synthetic),
        "privacy": dict(privacy) if privacy else None,
        "claimed_epsilon": claimed,
        "fidelity": fidelity,
        "utility": utility,
        "memorization": _memorization_data(mem),
        "risks": risks,
        "audit": audit.as_dict() if audit else None,
        "epsilon_lower_bound": audit.epsilon_lower_bound if audit else None,
        "training": {"epoch_losses": list((training or {}).get("epoch_losses", []))},
        "gates": [g.as_dict() for g in gates],
        "spec": spec.model_dump(mode="json"),
        "timings": watch.seconds,
    }
    return Evaluation(_json_safe(data))


class _Stopwatch:
    """Seconds per step of the evaluation, for the report's timings."""

    def __init__(self, on_step: Callable[[str], None] | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.on_step = on_step

    @contextlib.contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        if self.on_step is not None:
            self.on_step(step)
        started = time.perf_counter()
        yield
        self.seconds[step] = round(time.perf_counter() - started, 3)


def _sizes(kinds: dict[str, str], **frames: pd.DataFrame) -> dict[str, Any]:
    return {**{f"{name}_rows": len(frame) for name, frame in frames.items()}, "columns": kinds}


def _check_frames(kinds: Mapping[str, str], **frames: pd.DataFrame) -> None:
    for name, frame in frames.items():
        absent = sorted(set(kinds) - set(frame.columns))
        if absent:
            raise MetricError(f"the {name} table lacks columns {absent}")
        if len(frame) < 2:
            raise MetricError(f"the {name} table needs at least 2 rows, got {len(frame)}")


def _fidelity(
    train: pd.DataFrame, synthetic: pd.DataFrame, kinds: dict[str, str]
) -> tuple[dict[str, Any], Any]:
    """sdmetrics' report with its per-column scores, the binned marginals and the
    association matrices the figures draw; and the report itself (the gates read it)."""
    quality = quality_report(train, synthetic, kinds)
    codes_real, codes_syn = discretize(train, synthetic, kinds)
    fidelity = {
        "overall": quality.overall,
        "column_shapes": quality.column_shapes,
        "column_pair_trends": quality.column_pair_trends,
        "columns": [
            {"column": str(r["Column"]), "metric": str(r["Metric"]), "score": float(r["Score"])}
            for _, r in quality.details.iterrows()
        ],
        "distributions": column_distributions(train, synthetic, kinds),
        "associations": {
            "columns": list(kinds),
            "real": association_matrix(codes_real),
            "synthetic": association_matrix(codes_syn),
        },
    }
    return fidelity, quality


def _utility(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    kinds: dict[str, str],
    spec: EvalSpec,
) -> list[dict[str, Any]]:
    """TSTR beside TRTR for each target (the spec's, or chosen from the table)."""
    utility = []
    for target in spec.targets or choose_targets(train, kinds):
        if target not in kinds:
            raise MetricError(f"target column {target!r} is not in the table")
        task = _task(train, target, kinds[target], spec.task)
        score = tstr(train, synthetic, holdout, target=target, task=task, seed=spec.seed)
        utility.append(
            {
                "target": target,
                "task": task,
                "metric": score.metric,
                "synthetic": score.synthetic,
                "real": score.real,
            }
        )
    return utility


def _risks(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    kinds: dict[str, str],
    spec: EvalSpec,
    utility: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """anonymeter's attacks; the inference secret is the spec's, else the first target."""
    from evaluation.risks import attack_risks

    secrets = spec.attack_secrets or [str(u["target"]) for u in utility[:1]] or None
    found = attack_risks(
        train, holdout, synthetic, kinds, n_attacks=spec.n_attacks, secrets=secrets,
        max_rows=spec.max_rows, seed=spec.seed,
    )  # fmt: skip
    return [{**vars(r), "ci": list(r.ci)} for r in found]


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null, numpy scalars plain numbers: strict JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value

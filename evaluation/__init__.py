"""Sanitas evaluation: fidelity, utility, memorization, attack risks, audit, gates, reports.

Heavy modules (scikit-learn, sdmetrics, anonymeter) load on first use, so the service
can import ``evaluation.spec`` to build and validate jobs without them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from evaluation.errors import EvaluationError, MetricError
from evaluation.spec import EvalSpec, Thresholds

__all__ = [
    "EvalSpec",
    "Evaluation",
    "EvaluationError",
    "MetricError",
    "QualityScores",
    "Thresholds",
    "UtilityScore",
    "evaluate",
    "marginal_accuracy",
    "quality_report",
    "sdtypes",
    "tstr",
]

_LAZY = {
    "Evaluation": "evaluation.result",
    "evaluate": "evaluation.evaluate",
    "QualityScores": "evaluation.fidelity",
    "marginal_accuracy": "evaluation.fidelity",
    "quality_report": "evaluation.fidelity",
    "sdtypes": "evaluation.fidelity",
    "UtilityScore": "evaluation.utility",
    "tstr": "evaluation.utility",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'evaluation' has no attribute {name!r}")

"""Sanitas evaluation: fidelity, utility and (later) memorization and audit reports."""

from evaluation.errors import EvaluationError, MetricError
from evaluation.fidelity import QualityScores, marginal_accuracy, quality_report, sdtypes
from evaluation.utility import UtilityScore, tstr

__all__ = [
    "EvaluationError",
    "MetricError",
    "QualityScores",
    "UtilityScore",
    "marginal_accuracy",
    "quality_report",
    "sdtypes",
    "tstr",
]

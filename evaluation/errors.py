"""Named errors of the evaluation package."""

from __future__ import annotations

__all__ = ["EvaluationError", "MetricError"]


class EvaluationError(Exception):
    """Base class of every error raised by ``evaluation``."""


class MetricError(EvaluationError):
    """A metric cannot be computed on these inputs; the message says why."""

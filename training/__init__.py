"""Sanitas training: fit differentially private generators and sample from them.

Torch, Lightning and Opacus load lazily: ``import training`` is cheap, and the spec
and schema modules can be used without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.errors import TrainingError
from training.schema import ColumnKind, ColumnSchema, TableSchema, infer_schema
from training.spec import DPConfig, FitSummary, PrivacyReport, TrainSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ColumnKind",
    "ColumnSchema",
    "DPConfig",
    "FitSummary",
    "PrivacyReport",
    "TableSchema",
    "TrainSpec",
    "TrainingError",
    "fit",
    "infer_schema",
    "load",
]


def fit(
    data: pd.DataFrame,
    spec: TrainSpec,
    *,
    schema: TableSchema | None = None,
    progress: Any = None,
) -> Any:
    """Fit the generator named by ``spec.generator``; returns a generator with ``sample``."""
    from training.generators import create_generator

    return create_generator(spec.generator).fit(data, spec, schema=schema, progress=progress)


def load(directory: str | Path) -> Any:
    """Load a saved generator artifact (no pickle involved)."""
    from training.generators import load_generator

    return load_generator(directory)

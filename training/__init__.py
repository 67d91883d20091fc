"""Sanitas training: fit differentially private generators and sample from them.

Torch, Lightning and Opacus load lazily: ``import training`` is cheap, and the spec,
schema and registry modules can be used without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.errors import TrainingError
from training.registry import modality_of
from training.schema import ColumnKind, ColumnSchema, TableSchema, infer_schema
from training.spec import DPConfig, FitSummary, PrivacyReport, TrainSpec

if TYPE_CHECKING:
    from training.pipeline import fit
    from training.protocol import TrainedGenerator

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
    "modality_of",
]


def __getattr__(name: str) -> Any:
    """``training.fit`` loads the fit pipeline (torch, Lightning, Opacus) on first use."""
    if name == "fit":
        from training.pipeline import fit

        return fit
    raise AttributeError(f"module 'training' has no attribute {name!r}")


def load(directory: str | Path) -> TrainedGenerator:
    """Load a saved generator artifact (no pickle involved)."""
    from training.generators import load_generator

    return load_generator(directory)

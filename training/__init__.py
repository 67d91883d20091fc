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
    import pandas as pd

    from training.images import ImageSet
    from training.pipeline.loop import EpochProgress
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


def fit(
    data: pd.DataFrame | ImageSet,
    spec: TrainSpec,
    *,
    schema: TableSchema | None = None,
    public_classes: bool = False,
    progress: EpochProgress | None = None,
    plant: Any = None,
) -> TrainedGenerator:
    """Fit the generator ``spec.generator`` names on a table or on labeled images.

    ``schema``: a table's reviewed schema (else inferred). ``public_classes``: the owner
    declares an image set's class list public knowledge, so every class is kept and only
    their frequencies are learned under DP. ``plant``: an audit's canaries, built from
    what preprocessing released (``training.canaries``).
    """
    from training.pipeline import fit as run_pipeline

    return run_pipeline(
        data, spec, schema=schema, public_classes=public_classes, progress=progress, plant=plant
    )


def load(directory: str | Path) -> TrainedGenerator:
    """Load a saved generator artifact (no pickle involved)."""
    from training.generators import load_generator

    return load_generator(directory)

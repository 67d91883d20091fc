"""Sanitas training: fit differentially private generators and sample from them.

Torch, Lightning and Opacus load lazily: ``import training`` is cheap, and the spec
and schema modules can be used without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.errors import TrainingError
from training.schema import ColumnKind, ColumnSchema, TableSchema, infer_schema
from training.spec import DISTRIBUTED_GENERATORS, DPConfig, FitSummary, PrivacyReport, TrainSpec

if TYPE_CHECKING:
    import pandas as pd

    from training.canaries import ImagePlanter, TablePlanter
    from training.images import ImageSet

IMAGE_GENERATORS = ("image-ar", "image-gan")

__all__ = [
    "DISTRIBUTED_GENERATORS",
    "IMAGE_GENERATORS",
    "ColumnKind",
    "ColumnSchema",
    "DPConfig",
    "FitSummary",
    "PrivacyReport",
    "TableSchema",
    "TrainSpec",
    "TrainingError",
    "fit",
    "fit_images",
    "infer_schema",
    "load",
]


def fit(
    data: pd.DataFrame,
    spec: TrainSpec,
    *,
    schema: TableSchema | None = None,
    progress: Any = None,
    plant: TablePlanter | None = None,
) -> Any:
    """Fit the table generator named by ``spec.generator``; it has ``sample``.

    ``plant``: audit canaries, built from the released encoder (``training.canaries``).
    """
    from training.generators import create_generator

    if spec.generator in IMAGE_GENERATORS:
        raise TrainingError(f"generator={spec.generator!r} trains on images, not a table")
    return create_generator(spec.generator).fit(
        data, spec, schema=schema, progress=progress, plant=plant
    )


def fit_images(
    data: ImageSet,
    spec: TrainSpec,
    *,
    public_classes: bool = False,
    progress: Any = None,
    plant: ImagePlanter | None = None,
) -> Any:
    """Fit the image generator named by ``spec.generator`` on labeled images.

    ``public_classes``: the owner declares the class list public knowledge, so every
    class is kept and only the class frequencies are learned under DP.
    """
    from training.generators import create_generator

    if spec.generator not in IMAGE_GENERATORS:
        raise TrainingError(f"generator={spec.generator!r} trains on tables, not images")
    return create_generator(spec.generator).fit(
        data, spec, public_classes=public_classes, progress=progress, plant=plant
    )


def load(directory: str | Path) -> Any:
    """Load a saved generator artifact (no pickle involved)."""
    from training.generators import load_generator

    return load_generator(directory)

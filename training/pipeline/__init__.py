"""The one fit pipeline: modality preparation, a generator's recipe, the training loop.

``fit`` runs the same steps for every generator the registry knows:

1. prepare the modality under DP (tables: schema, encoders, calibration plan; images:
   the label histogram), planting an audit's canaries after the releases;
2. the recipe's batch size and epochs for the DP row count, then its networks;
3. ``loop.train``: DP-SGD (one process or DDP) or plain training;
4. the artifact, accounted end to end (and, for tables, calibrated).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd
import pytorch_lightning as pl

from training.canaries import ImagePlanter, TablePlanter
from training.errors import TrainingError
from training.images import ImageSet
from training.pipeline.accounting import RunFacts
from training.pipeline.images import PreparedImages, build_image_generator, prepare_images
from training.pipeline.loop import EpochProgress, train, training_record
from training.pipeline.recipe import Prepared
from training.pipeline.tables import PreparedTable, build_table_generator, prepare_table
from training.protocol import TrainedGenerator
from training.registry import GeneratorEntry, entry
from training.schema import TableSchema
from training.spec import TrainSpec

__all__ = ["fit", "fit_prepared", "prepare"]

logger = logging.getLogger(__name__)


def prepare(
    data: pd.DataFrame | ImageSet,
    spec: TrainSpec,
    *,
    schema: TableSchema | None = None,
    public_classes: bool = False,
    plant: Any = None,
) -> Prepared:
    """The modality's DP preprocessing of ``data`` for the generator ``spec`` names."""
    generator = entry(spec.generator)
    if generator.modality == "images":
        if not isinstance(data, ImageSet):
            raise TrainingError(f"generator={spec.generator!r} trains on images, not tables")
        images_plant: ImagePlanter | None = plant
        return prepare_images(data, spec, public_classes=public_classes, plant=images_plant)
    if not isinstance(data, pd.DataFrame):
        raise TrainingError(f"generator={spec.generator!r} trains on tables, not images")
    table_plant: TablePlanter | None = plant
    return prepare_table(data, spec, schema, plant=table_plant)


def fit(
    data: pd.DataFrame | ImageSet,
    spec: TrainSpec,
    *,
    schema: TableSchema | None = None,
    public_classes: bool = False,
    progress: EpochProgress | None = None,
    plant: Any = None,
) -> TrainedGenerator:
    """Fit the generator ``spec.generator`` names; every look at ``data`` is charged.

    Without a ``progress`` callback each epoch is logged (logger ``training.pipeline``,
    INFO: ``logging.basicConfig(level=logging.INFO)`` shows it), so a fit from Python
    is not silent for minutes."""
    started = time.perf_counter()
    progress = progress or log_epoch
    prepared = prepare(data, spec, schema=schema, public_classes=public_classes, plant=plant)
    return fit_prepared(prepared, spec, started=started, progress=progress)


def log_epoch(epoch: int, total: int, loss: float, epsilon: float | None) -> None:
    spent = f", epsilon spent {epsilon:.3f}" if epsilon is not None else ""
    logger.info("epoch %d/%d: loss %.4f%s", epoch, total, loss, spent)


def fit_prepared(
    prepared: Prepared,
    spec: TrainSpec,
    *,
    started: float,
    progress: EpochProgress | None = None,
) -> TrainedGenerator:
    """The fit after preprocessing: what runs of one prepared dataset with different
    performance settings (one process or several) share, and so account identically."""
    generator = entry(spec.generator)
    recipe = generator.recipe()
    dp = spec.dp.enabled
    batch_size = spec.batch_size or recipe.batch_size(prepared.rows, dp)
    epochs = spec.epochs or recipe.epochs(prepared.rows, dp)
    pl.seed_everything(spec.seed, workers=False, verbose=False)
    networks = recipe.build(prepared, spec, batch_size)
    trained = train(
        networks, prepared, spec, batch_size=batch_size, epochs=epochs, progress=progress
    )
    networks.sampler.cpu().eval()
    run = RunFacts(spec, trained, epochs, batch_size, started)
    return _artifact(generator, recipe, prepared, networks.sampler, run)


def _artifact(
    generator: GeneratorEntry, recipe: Any, prepared: Prepared, net: Any, run: RunFacts
) -> TrainedGenerator:
    record = training_record(run.spec, run.trained)
    model: TrainedGenerator
    if isinstance(prepared, PreparedTable):
        model = build_table_generator(generator.artifact(), prepared, net, run, record)
    else:
        assert isinstance(prepared, PreparedImages)
        model = build_image_generator(
            generator.artifact(), prepared, net, run, record,
            public_metadata=list(recipe.public_metadata),
        )  # fmt: skip
    return model

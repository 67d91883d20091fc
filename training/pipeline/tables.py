"""The table modality: DP preprocessing before training, the calibrated artifact after.

``prepare_table`` charges every look at the rows (the schema's inference aside, which
the owner reviews): the encoders' bounds, bins and category domains are DP releases,
and the rows become tokens. ``build_table_generator`` turns the trained network into
the artifact, calibrated on DP-measured marginals when the budget planned it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from training.budget import PreprocessingBudget, plan_preprocessing
from training.calibration import Applied, Calibration, Draw, Tilt, fit_calibration
from training.canaries import TablePlanter
from training.dp.secret_random import secret_numpy_rng
from training.pipeline.accounting import RunFacts, account
from training.preprocessing import FittedPreprocessing, fit_encoders
from training.registry import entry
from training.schema import TableSchema, infer_schema
from training.spec import FitSummary, PrivacyReport, TrainSpec

logger = logging.getLogger(__name__)

__all__ = ["PreparedTable", "build_table_generator", "calibrate", "prepare_table"]


@dataclass(frozen=True)
class PreparedTable:
    """A table after DP preprocessing: its encoders, tokens and DP row count."""

    schema: TableSchema
    budget: PreprocessingBudget
    fitted: FittedPreprocessing
    tokens: torch.Tensor  # (rows, columns)
    rows: float  # the DP row count, at least 1: what batch sizes may depend on

    @property
    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.tokens,)


def prepare_table(
    df: pd.DataFrame,
    spec: TrainSpec,
    schema: TableSchema | None,
    *,
    plant: TablePlanter | None = None,
) -> PreparedTable:
    """Schema, the preprocessing budget and the encoders, each look at ``df`` charged.

    ``plant`` (an audit's canaries) is called with the released encoder and the DP row
    count once preprocessing has seen the real rows alone, and the rows it returns are
    trained on beside them: they can neither shape the released domain nor be built
    from anything but what was released.
    """
    schema = schema or infer_schema(df, min_rows=spec.min_rows)
    schema.validate_frame(df)
    # factors applied in the conditionals hold every pair; resampled, they degenerate
    applied = entry(spec.generator).artifact().calibration_applied
    budget = plan_preprocessing(spec.dp, schema, every_pair=applied == "conditionals")
    fitted = fit_encoders(
        df, schema, sigma=budget.sigma, delta_selection=budget.delta_selection,
        max_bins=spec.max_bins, rng=secret_numpy_rng(),
    )  # fmt: skip
    rows = max(fitted.noisy_rows, 1.0)
    if plant is not None:
        planted = plant(fitted.encoder, schema, rows)
        df = pd.concat([df, planted], ignore_index=True)
        rows += len(planted)  # their number is the planter's, not the data's
    tokens = torch.from_numpy(fitted.encoder.encode(df))
    return PreparedTable(schema, budget, fitted, tokens, rows)


def calibrate(
    draw: Draw, table: PreparedTable, *, applied: Applied = "resampling"
) -> tuple[Calibration | None, list[list[str]] | None]:
    """Measure the marginals the budget planned and fit the tilt; (None, None) if off.

    ``draw(n, calibration)`` gives ``n`` rows of the trained network's tokens, tilted
    the way sampling will apply ``calibration`` (``applied``). Noise and selection
    draw from OS entropy, never from the user's seed.
    """
    plan = table.budget.calibration
    if plan is None:
        return None, None
    encoder = table.fitted.encoder
    calibration, pairs = fit_calibration(
        draw, encoder, table.tokens.numpy(), plan, rows=table.rows,
        rng=secret_numpy_rng(), applied=applied,
    )  # fmt: skip
    logger.info("calibrated on 1-way marginals and pairs %s", pairs)
    return calibration, [[encoder.names[i], encoder.names[j]] for i, j in pairs]


def build_table_generator(
    artifact: Any, table: PreparedTable, net: torch.nn.Module, run: RunFacts, record: dict[str, Any]
) -> Any:
    """The trained generator, calibrated when the budget planned it, with its accounting.

    Calibration draws from the generator itself, so it is built first; a calibrated
    run is then accounted again with its measured pairs (the second report is the one
    kept, its fit seconds include the calibration).
    """
    fitted = table.fitted

    def accounted(pairs: list[list[str]] | None) -> tuple[PrivacyReport, FitSummary]:
        return account(
            run, table.budget, columns=len(fitted.encoder.columns),
            public_metadata=fitted.public_metadata, private_metadata=fitted.private_metadata,
            calibration_pairs=pairs,
        )  # fmt: skip

    privacy_report, summary = accounted(None)
    model = artifact(
        schema=table.schema, encoder=fitted.encoder, net=net, privacy=privacy_report,
        summary=summary, training=record,
    )  # fmt: skip

    def draw(n: int, calibration: Calibration | Tilt | None) -> np.ndarray:
        return model.draw_unconditional(n, calibration=calibration)

    model.calibration, pairs = calibrate(draw, table, applied=model.calibration_applied)
    if pairs is not None:
        model.privacy, model.summary = accounted(pairs)
    return model

"""What every fit shares: the DP preprocessing of a table, and the accounting it ends with."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch

from training.budget import PreprocessingBudget, plan_preprocessing, report
from training.calibration import Calibration, fit_calibration
from training.canaries import TablePlanter
from training.dp.secret_random import secret_numpy_rng
from training.generators.table_generator import TableGenerator
from training.preprocessing import FittedPreprocessing, fit_encoders
from training.schema import TableSchema, infer_schema
from training.spec import DPConfig, FitSummary, PrivacyReport, TrainSpec

logger = logging.getLogger(__name__)

__all__ = ["PreparedTable", "account", "calibrate", "finish_table_fit", "prepare_table"]


@dataclass(frozen=True)
class PreparedTable:
    """A table after DP preprocessing: its encoders, tokens and DP row count."""

    schema: TableSchema
    budget: PreprocessingBudget
    fitted: FittedPreprocessing
    tokens: torch.Tensor  # (rows, columns)
    rows: float  # the DP row count, at least 1: what batch sizes may depend on


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
    budget = plan_preprocessing(spec.dp, schema)
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


def account(
    generator: str,
    dp: DPConfig,
    budget: PreprocessingBudget,
    *,
    noise_multiplier: float | None,
    sample_rate: float | None,
    steps: int,
    epochs: int,
    batch_size: int,
    started: float,
    columns: int,
    public_metadata: list[str],
    private_metadata: list[str],
    calibration_pairs: list[list[str]] | None = None,
) -> tuple[PrivacyReport, FitSummary]:
    """The privacy report of a finished fit and the summary the CLI and jobs print."""
    privacy_report = report(
        dp, budget, noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps,
        public_metadata=public_metadata, private_metadata=private_metadata,
        calibration_pairs=calibration_pairs,
    )  # fmt: skip
    summary = FitSummary(
        generator=generator, epsilon=privacy_report.epsilon, delta=privacy_report.delta,
        epsilon_preprocessing=privacy_report.epsilon_preprocessing,
        epsilon_training=privacy_report.epsilon_training,
        noise_multiplier=privacy_report.noise_multiplier, sample_rate=privacy_report.sample_rate,
        steps=steps, epochs=epochs, batch_size=batch_size,
        fit_seconds=round(time.perf_counter() - started, 3), columns=columns,
    )  # fmt: skip
    return privacy_report, summary


def calibrate(
    draw: Callable[[int], np.ndarray], table: PreparedTable
) -> tuple[Calibration | None, list[list[str]] | None]:
    """Measure the marginals the budget planned and fit the tilt; (None, None) if off.

    ``draw(n)`` gives ``n`` rows of the trained network's tokens. Noise and selection
    draw from OS entropy, never from the user's seed.
    """
    plan = table.budget.calibration
    if plan is None:
        return None, None
    encoder = table.fitted.encoder
    calibration, pairs = fit_calibration(
        draw, encoder, table.tokens.numpy(), plan, rows=table.rows,
        rng=secret_numpy_rng(),
    )  # fmt: skip
    logger.info("calibrated on 1-way marginals and pairs %s", pairs)
    return calibration, [[encoder.names[i], encoder.names[j]] for i, j in pairs]


G = TypeVar("G", bound=TableGenerator)


def finish_table_fit(
    cls: type[G],
    table: PreparedTable,
    net: torch.nn.Module,
    spec: TrainSpec,
    *,
    noise_multiplier: float | None,
    sample_rate: float | None,
    steps: int,
    epochs: int,
    batch_size: int,
    started: float,
    training: dict[str, Any],
) -> G:
    """The trained generator, calibrated when the budget planned it, with its accounting.

    Calibration draws from the generator itself, so it is built first; a calibrated
    run is then accounted again with its measured pairs (the second report is the one
    kept, its fit seconds include the calibration).
    """
    fitted = table.fitted

    def accounted(pairs: list[list[str]] | None) -> tuple[PrivacyReport, FitSummary]:
        return account(
            cls.name, spec.dp, table.budget, noise_multiplier=noise_multiplier,
            sample_rate=sample_rate, steps=steps, epochs=epochs, batch_size=batch_size,
            started=started, columns=len(fitted.encoder.columns),
            public_metadata=fitted.public_metadata, private_metadata=fitted.private_metadata,
            calibration_pairs=pairs,
        )  # fmt: skip

    privacy_report, summary = accounted(None)
    model = cls(
        schema=table.schema, encoder=fitted.encoder, net=net, privacy=privacy_report,
        summary=summary, training=training,
    )  # fmt: skip
    model.calibration, pairs = calibrate(model.draw_unconditional, table)
    if pairs is not None:
        model.privacy, model.summary = accounted(pairs)
    return model

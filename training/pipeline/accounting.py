"""The accounting a fit ends with: the privacy report and the summary the CLI prints."""

from __future__ import annotations

import time
from dataclasses import dataclass

from training.budget import PreprocessingBudget, report
from training.pipeline.loop import Trained
from training.spec import FitSummary, PrivacyReport, TrainSpec

__all__ = ["RunFacts", "account"]


@dataclass(frozen=True)
class RunFacts:
    """What a finished fit ran: its spec, its sizes, what the loop counted, its start."""

    spec: TrainSpec
    trained: Trained
    epochs: int
    batch_size: int
    started: float  # time.perf_counter() when the fit began


def account(
    run: RunFacts,
    budget: PreprocessingBudget,
    *,
    columns: int,
    public_metadata: list[str],
    private_metadata: list[str],
    calibration_pairs: list[list[str]] | None = None,
) -> tuple[PrivacyReport, FitSummary]:
    """The privacy report of a finished fit and the summary the CLI and jobs print."""
    trained = run.trained
    privacy_report = report(
        run.spec.dp, budget, noise_multiplier=trained.noise_multiplier,
        sample_rate=trained.sample_rate, steps=trained.steps,
        public_metadata=public_metadata, private_metadata=private_metadata,
        calibration_pairs=calibration_pairs,
    )  # fmt: skip
    summary = FitSummary(
        generator=run.spec.generator, epsilon=privacy_report.epsilon, delta=privacy_report.delta,
        epsilon_preprocessing=privacy_report.epsilon_preprocessing,
        epsilon_training=privacy_report.epsilon_training,
        epsilon_calibration=privacy_report.epsilon_calibration,
        noise_multiplier=privacy_report.noise_multiplier, sample_rate=privacy_report.sample_rate,
        steps=trained.steps, epochs=run.epochs, batch_size=run.batch_size,
        fit_seconds=round(time.perf_counter() - run.started, 3), columns=columns,
    )  # fmt: skip
    return privacy_report, summary

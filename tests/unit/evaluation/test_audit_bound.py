"""The one-run audit bound: its statistics, checked against known cases."""

import math

import numpy as np
import pytest

from evaluation.audit import epsilon_lower_bound, p_value, planted_half
from evaluation.errors import MetricError


def test_p_value_rises_with_epsilon_and_with_delta():
    # 90 of 100 guesses right is implausible at epsilon 0, plausible at epsilon 3
    ps = [p_value(1000, 100, 90, eps, 0.0) for eps in (0.0, 1.0, 2.0, 3.0)]
    assert ps == sorted(ps) and ps[0] < 1e-15 and ps[-1] > 0.05
    assert p_value(1000, 100, 90, 2.0, 1e-3) > p_value(1000, 100, 90, 2.0, 0.0)


def test_pure_dp_p_value_is_the_binomial_tail():
    # all 10 of 10 guesses right under epsilon: q^10 with q = e^eps / (1 + e^eps)
    q = math.exp(1.0) / (1 + math.exp(1.0))
    assert p_value(100, 10, 10, 1.0, 0.0) == pytest.approx(q**10)


def test_random_scores_give_no_bound_in_95_percent_of_runs():
    rng = np.random.default_rng(0)
    positive = 0
    for _ in range(100):
        included = rng.random(400) < 0.5
        bound = epsilon_lower_bound(rng.normal(size=400), included, delta=1e-5)
        positive += bound.epsilon_lower_bound > 0
    assert positive <= 10  # at most 5% expected; 10 leaves room for chance


def test_perfect_attack_gives_a_large_bound():
    rng = np.random.default_rng(1)
    included = rng.random(1000) < 0.5
    result = epsilon_lower_bound(included.astype(float), included, delta=1e-5)
    assert result.epsilon_lower_bound > 3 and result.correct == result.guesses


def test_about_half_the_canaries_are_planted_and_ten_are_needed():
    included = planted_half(200, np.random.default_rng(3))
    assert len(included) == 200 and 60 < included.sum() < 140
    with pytest.raises(MetricError, match="at least 10 canaries"):
        planted_half(5, np.random.default_rng(3))

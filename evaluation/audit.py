"""Empirical privacy audit in one training run (Steinke, Nasr and Jagielski, NeurIPS 2023).

``m`` canaries (distinctive made-up rows, built from released metadata only) are each
put into the training set with probability 1/2. After training, an attack scores every
canary; the auditor guesses "in" for the top-scored and "out" for the bottom-scored
and abstains on the rest. For an (epsilon, delta)-DP run the number of correct
guesses among ``r`` is dominated by Binomial(r, e^epsilon / (1 + e^epsilon)) up to a
delta term (their Theorem 3), so an improbably high count rules epsilon out: the
largest epsilon ruled out at 95% confidence is the lower bound. The guess counts
tried are fixed in advance and the confidence is Bonferroni-corrected over them, so
choosing the best one is not p-hacking.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from evaluation.distances import NUMERIC_KINDS
from evaluation.errors import MetricError

__all__ = [
    "AuditResult",
    "Canaries",
    "epsilon_lower_bound",
    "nearest_image_scores",
    "p_value",
    "planted_half",
    "sample_match_scores",
]

GUESS_FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.5)


@dataclass(frozen=True)
class Canaries:
    rows: pd.DataFrame
    included: np.ndarray  # bool, one per canary: was it put into the training set?

    @property
    def inserted(self) -> pd.DataFrame:
        return self.rows[self.included]


@dataclass(frozen=True)
class AuditResult:
    epsilon_lower_bound: float
    confidence: float
    canaries: int
    guesses: int  # r of the guess count that gave the bound
    correct: int  # v
    attack: str

    def as_dict(self) -> dict[str, float | int | str]:
        return dict(vars(self))


def planted_half(m: int, rng: np.random.Generator) -> np.ndarray:
    """Which of ``m`` canaries go into the training run: each independently w.p. 1/2.

    The canaries themselves are made by the trainer from what the run released
    (``training.canaries``), never from the rows: they are trained into the released
    model.
    """
    if m < 10:
        raise MetricError(f"an audit needs at least 10 canaries, got {m}")
    return np.asarray(rng.random(m) < 0.5)


def sample_match_scores(
    synthetic: pd.DataFrame, rows: pd.DataFrame, kinds: Mapping[str, str], *, chunk: int = 2_000
) -> np.ndarray:
    """A black-box attack's score per row of ``rows``: how much synthetic data sits close.

    For a generator without a likelihood (a GAN): each synthetic row adds
    e^(2 x the columns on which it matches the canary), a match being an equal value,
    or a number within 2% of the column's synthetic range. A memorized canary comes
    back nearly whole, and its few near-copies outweigh many partial matches.
    """
    if synthetic.empty:
        raise MetricError("the attack needs synthetic rows")
    matches = np.zeros((len(rows), len(synthetic)), dtype=np.float32)
    for name, kind in kinds.items():
        ours, theirs = rows[name], synthetic[name]
        if kind in NUMERIC_KINDS and pd.api.types.is_numeric_dtype(theirs.dtype):
            a = ours.to_numpy(dtype=float, na_value=np.nan)
            b = theirs.to_numpy(dtype=float, na_value=np.nan)
            spread = np.nanmax(b) - np.nanmin(b) if np.isfinite(b).any() else 0.0
            tolerance = 0.02 * spread if spread > 0 else 0.5
            for start in range(0, len(a), chunk):
                near = np.abs(a[start : start + chunk, None] - b[None, :]) <= tolerance
                both_missing = np.isnan(a[start : start + chunk, None]) & np.isnan(b[None, :])
                matches[start : start + chunk] += near | both_missing
        else:
            a_text = ours.astype(object).where(ours.notna(), None).astype(str).to_numpy()
            b_text = theirs.astype(object).where(theirs.notna(), None).astype(str).to_numpy()
            for start in range(0, len(a_text), chunk):
                matches[start : start + chunk] += a_text[start : start + chunk, None] == b_text
    top = matches.max(axis=1, keepdims=True)
    return (top[:, 0] * 2 + np.log(np.exp(2 * (matches - top)).sum(axis=1))).astype(float)


def nearest_image_scores(synthetic: np.ndarray, canaries: np.ndarray) -> np.ndarray:
    """A black-box attack's score per canary image: minus the distance (root mean square
    over pixels, 0-255) to the nearest synthetic image of the canary's class. For
    generators without a likelihood (a GAN): a memorized canary comes back nearly as is.
    """
    if len(synthetic) == 0:
        raise MetricError("the attack needs synthetic images")
    a = canaries.reshape(len(canaries), -1).astype(np.float32)
    b = synthetic.reshape(len(synthetic), -1).astype(np.float32)
    squared = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
    return -np.sqrt(np.clip(squared, 0, None).min(axis=1) / a.shape[1])


def p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P[at least v of r guesses right] under (epsilon, delta)-DP, m canaries."""
    q = 1.0 / (1.0 + math.exp(-epsilon))
    beta = float(stats.binom.sf(v - 1, r, q))
    # delta term: 2 m delta max_i P[v > Binomial(r, q) >= v - i] / i
    pmf = stats.binom.pmf(np.arange(v - 1, -1, -1), r, q)  # v-1, v-2, ..., 0
    alpha = float(np.max(np.cumsum(pmf) / np.arange(1, v + 1))) if v > 0 else 0.0
    return min(1.0, beta + alpha * delta * 2 * m)


def _bound(m: int, r: int, v: int, delta: float, level: float) -> float:
    if p_value(m, r, v, 0.0, delta) >= level:
        return 0.0
    lo, hi = 0.0, 1.0
    while p_value(m, r, v, hi, delta) < level and hi < 64:
        lo, hi = hi, hi * 2
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if p_value(m, r, v, mid, delta) < level else (lo, mid)
    return lo


def epsilon_lower_bound(
    scores: Sequence[float] | np.ndarray,
    included: Sequence[bool] | np.ndarray,
    *,
    delta: float,
    confidence: float = 0.95,
    attack: str = "likelihood",
) -> AuditResult:
    """The largest epsilon the guesses rule out; higher score means "was included"."""
    s, inc = np.asarray(scores, dtype=float), np.asarray(included, dtype=bool)
    if s.shape != inc.shape or s.ndim != 1:
        raise MetricError("scores and included must be 1-D and of the same length")
    if not np.isfinite(s).all():
        raise MetricError("canary scores must be finite")
    m = len(s)
    order = np.argsort(-s, kind="stable")
    level = (1 - confidence) / len(GUESS_FRACTIONS)
    best = AuditResult(0.0, confidence, m, 0, 0, attack)
    for fraction in GUESS_FRACTIONS:
        half = max(1, int(fraction * m / 2))
        guess_in, guess_out = order[:half], order[m - half :]
        r = 2 * half
        v = int(inc[guess_in].sum() + (~inc[guess_out]).sum())
        eps = _bound(m, r, v, delta, level)
        if eps > best.epsilon_lower_bound or best.guesses == 0:
            best = AuditResult(eps, confidence, m, r, v, attack)
    return best

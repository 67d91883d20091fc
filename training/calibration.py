"""Calibration: tilt a trained table generator onto DP-measured marginals.

DP-SGD under a small epsilon keeps a table's columns well but blurs its strongest
pairwise dependencies and shrinks rare categories toward the majority (on CPS1988 at
epsilon 1 the model drew 1.3% part-time rows for 9% in the data). Measured marginals,
the currency of AIM and MST, fix exactly that. So after training, a share of epsilon
buys Gaussian releases that the run's one accountant composes with the
preprocessing and DP-SGD, in AIM's order:

1. The 1-way marginal of every column over its tokens (sensitivity sqrt(C)); the model
   is tilted onto them (post-processing).
2. Selection (tables of more than ``ALL_PAIRS_UP_TO`` pairs; smaller ones measure
   every pair), in ``SELECTION_ROUNDS`` rounds: for every pair not yet measured, the L1
   distance of the data's 2-way marginal from the *tilted* model's (scaled to the DP
   row count), less the error its measurement would have anyway (AIM's correction).
   One row moves each score by at most 1, so the vector of P scores has L2
   sensitivity sqrt(P); the largest *noisy* scores name the round's pairs
   (post-processing), which are measured (step 3) before the next round scores the
   model tilted onto them too. Scoring against the tilted
   model matters: a pair whose error is mostly a wrong column share (CPS1988's
   experience x parttime, with the part-time share shrunk) looks fixed once the shares
   are, and is not; measured against the raw model it never ranked.
3. Measurement: the 2-way marginals of the K chosen pairs over their columns' groups
   (sensitivity sqrt(K) over all rounds), with the same noise per cell as the 1-way
   marginals, each count shrunk (``_shrunk``) toward a prior: the mixture of the
   tilted model's pair and the pair's columns drawn apart that the noisy counts
   themselves favour (``_prior_by_evidence``), or, where every pair is measured, the
   pair's columns independent given a third column, from the other pairs' estimates
   (``_chain_priors``), where the counts favour that; cells the model never draws are
   not estimated (zero).
4. Fitting (post-processing, no data): the shrunk counts made to agree on every
   column they share (``training.consistency``), then iterative proportional fitting
   of one factor table per measured marginal, on a large pool of the model's own
   rows. Sampling then draws rows from the model and resamples them in proportion
   to the product of their factors: the model tilted, with the least change (in KL),
   onto the measured marginals. Conditioning with ``where=`` stays exact, because
   fixed columns only scale the factors of the rows that already match.

The token groups (adjacent numeric bins merged by the model's own mass, categories
kept up to a limit) come from the model's samples, so they cost nothing either.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from training.consistency import consistent
from training.encoding import CategoricalEncoder, TableEncoder
from training.errors import ArtifactError

__all__ = [
    "Calibration",
    "CalibrationPlan",
    "MeasuredMarginal",
    "fit_calibration",
    "plan_calibration",
]

# 2-way marginals measured per run, and the groups a numeric column's bins merge into
# (+ missing). Under importance resampling more pairs degenerated the weights (issue 21);
# held in the conditionals they do not. benchmarks/tabular_quality.py at epsilon 1, public
# schema, before -> after one pair per column at 20 groups (was 8 at 10; 20 is the
# evaluation's own quantile resolution), all-pairs TVD: nassCDS 0.059 -> 0.046-0.048,
# covid_testing 0.113 -> 0.096-0.108, fair 0.119 -> 0.101, yrbss 0.092 -> 0.093 (flat;
# one run spreads by about 0.005); docs/benchmarks.md. Each pair costs sampling a little
# (ConditionalTilt). A table measures one pair per column within [MIN_PAIRS, MAX_PAIRS]
# (public: the column count): fair and CPS1988 keep about the 8 they were tuned with.
MIN_PAIRS = 8
MAX_PAIRS = 16
# Up to this many pairs (15 columns) every pair is measured and nothing is selected.
# With the measurements made to agree (training.consistency) the fit reaches them, and
# measuring every pair, with each cell's noise up by sqrt((C+P)/(2C)) and no selection
# to pay for, beat one pair per column (training.fit on benchmarks/tabular_quality.py's
# split, epsilon 1, public schema, all-pairs TVD, one fit per figure, 2026-12-06;
# docs/benchmarks.md): DoctorContacts 0.086-0.089 -> 0.0751 / TSTR
# 0.52-0.60 -> 0.751 (AIM: 0.073 / 0.765), nassCDS 0.044-0.047 -> 0.0406-0.0443,
# CPS1988 0.056-0.059 -> 0.0520; yrbss, covid_testing and fair flat. Wider tables keep
# the selection: P grows as C^2, and so would each cell's noise.
ALL_PAIRS_UP_TO = 105
NUMERIC_GROUPS = 20
MAX_CATEGORY_GROUPS = 16  # categories kept apart; the rest share one group
# With the factors applied in the conditionals (every pair measured), a wide
# category also keeps apart every value the model gives CATEGORY_APART_SIGMAS times the
# measurement's noise in rows, up to WIDE_CATEGORY_GROUPS groups: MplsStops' 87
# neighbourhoods at 16 groups put 41% of rows in one merged group, where no pair could
# say which precinct a neighbourhood lies in (development runs, one DP network, the same
# noise: all-pairs TVD 0.0685 at 16 groups, 0.0654 at 32, 0.0624 at 48, 0.0632 at 64,
# with the empty cells of _shrunk). covid_testing's 88 clinics, most of them small, stay
# near 16 (at 48: 0.0909 against 0.0889).
CATEGORY_APART_SIGMAS = 4.0
WIDE_CATEGORY_GROUPS = 64
SELECTION_PART = 1 / 6  # of the calibration's 1/z^2, when pairs must be selected
# Pairs are selected in rounds, each scored against the model tilted onto everything
# measured before it (AIM's loop): a pair that an earlier one already fixed (nassCDS'
# yearVeh x deploy once yearVeh x abcat is measured, abcat and deploy being one fact)
# no longer ranks. Each round's selection gets 1/ROUNDS of the selection's 1/z^2.
SELECTION_ROUNDS = 3
POOL_ROWS = 100_000  # model rows the factors are fitted on
# _empty_chance: the mixture's starting share of empty cells, and its EM steps
EMPTY_START = 0.1
EMPTY_ITERATIONS = 20
IPF_ITERATIONS = 50
FACTOR_CAP = 5.0  # see _ipf
IPF_TOLERANCE = 1e-4
# a row's resampling weight is at most this many times the pool's mean: uncapped, the
# product of 23 factor tables put 4.6% of one table's output on one token-row (issue 21).
# At 10 the cap kept a model with badly wrong marginals from being fixed (a plugin drawing
# fair's columns independently: worst column TV 0.204, against 0.051 at 30 and 0.052
# uncapped)
WEIGHT_CAP = 30.0
# applied in the conditionals (see ``training.conditional_tilt``): fitted in one draw
# of this many rows, each column's tables as the draw reaches it (FittingTilt)
FIT_POOL_ROWS = 65_536
# Resampling n rows from n model rows whose tilt has an effective sample size of
# a tenth (fair at epsilon 1) repeats rows: sdmetrics quality 0.895 against 0.913 from a
# pool 3x larger (6 fits). So the pool grows until each group's effective size is this
# share of the rows it should fill, at most MAX_OVERSAMPLE times: sampling slows as much.
POOL_ESS_SHARE = 0.3
# weights of the network's pair against its columns drawn apart, in a pair's prior
PRIOR_WEIGHTS = np.linspace(0.0, 1.0, 11)
MAX_OVERSAMPLE = 2.0


@dataclass(frozen=True)
class CalibrationPlan:
    """Noise of the three calibration releases, fixed from the schema before any row."""

    columns: int
    pairs_total: int
    pairs_measured: int
    selection_noise_multiplier: float  # 0 when every pair is measured (no selection)
    measurement_noise_multiplier: float  # of the 1-way and 2-way releases together
    rounds: int = 1  # selections, each with noise multiplier z * sqrt(rounds)

    @property
    def one_way_noise_multiplier(self) -> float:
        """The 1-way release alone (sensitivity sqrt(C))."""
        return self.measurement_sigma / math.sqrt(self.columns)

    @property
    def pair_noise_multiplier(self) -> float:
        """The 2-way release alone (sensitivity sqrt(K))."""
        return self.measurement_sigma / math.sqrt(self.pairs_measured)

    @property
    def history(self) -> list[tuple[float, float, int]]:
        """The releases as the accountant composes them: their 1/z^2 add up to the
        measurement's, so splitting it in two adaptive releases costs nothing."""
        releases = [self.one_way_noise_multiplier]
        if self.selection_noise_multiplier > 0:
            releases += [self.round_noise_multiplier] * self.rounds
        if self.pairs_measured:
            releases.append(self.pair_noise_multiplier)
        return [(z, 1.0, 1) for z in releases if z > 0]

    @property
    def round_noise_multiplier(self) -> float:
        """One round's selection: ``rounds`` of them cost what the selection's says."""
        return self.selection_noise_multiplier * math.sqrt(self.rounds)

    @property
    def selection_sigma(self) -> float:
        """Noise on each pair's score in one round; a score moves by at most 1 per row
        (a round scores at most every pair)."""
        return self.round_noise_multiplier * math.sqrt(self.pairs_total)

    def round_sizes(self) -> list[int]:
        """Pairs selected in each round, the earlier rounds taking the remainder."""
        base, extra = divmod(self.pairs_measured, self.rounds)
        return [base + (r < extra) for r in range(self.rounds)]

    @property
    def measurement_sigma(self) -> float:
        """Noise on each cell count of every measured marginal, 1-way or pair.

        The same for both: C/sigma^2 + K/sigma^2 = 1/z^2, so the two releases together
        cost what the measurement's multiplier z says. (Quieter pairs at the 1-way
        marginals' expense, 1-way noise twice the pairs', lost 0.05 of sdmetrics
        quality on fair at epsilon 1: the column shares matter as much.)
        """
        return self.measurement_noise_multiplier * math.sqrt(self.columns + self.pairs_measured)


def plan_calibration(
    *,
    epsilon: float,
    share: float,
    columns: int,
    delta: float,
    accountant: str,
    every_pair: bool = True,
) -> CalibrationPlan | None:
    """Noise multipliers whose releases *together* cost ``share * epsilon``.

    Gaussian releases compose exactly: noise multipliers z_i act as one release with
    1/z^2 = sum(1/z_i^2). So one z is solved for the whole share and split, a
    ``SELECTION_PART`` of 1/z^2 to the selection and the rest to the measurements;
    nothing is lost to splitting. ``every_pair``: measure every pair of a table of up
    to ALL_PAIRS_UP_TO pairs; False for generators whose factors are applied by
    resampling, where many factors degenerate the weights (issue 21).
    None when calibration is off.
    """
    from training import privacy  # Opacus: the fit's import, kept out of the samplers'

    if share <= 0 or columns < 1:
        return None
    pairs_total = columns * (columns - 1) // 2
    measured = min(max(MIN_PAIRS, min(columns, MAX_PAIRS)), pairs_total)
    if every_pair and pairs_total <= ALL_PAIRS_UP_TO:
        measured = pairs_total
    z = privacy.solve_preprocessing_noise(
        epsilon=epsilon * share, delta=delta, accountant=accountant
    )
    selecting = measured < pairs_total
    return CalibrationPlan(
        columns=columns,
        pairs_total=pairs_total,
        pairs_measured=measured,
        selection_noise_multiplier=z / math.sqrt(SELECTION_PART) if selecting else 0.0,
        measurement_noise_multiplier=z / math.sqrt(1 - SELECTION_PART) if selecting else z,
        rounds=min(SELECTION_ROUNDS, measured) if selecting else 1,
    )


class MeasuredMarginal(BaseModel):
    """One measured marginal (one column or a pair) and its fitted factor table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    columns: list[int]
    factors: list[float]  # row-major over the columns' groups (or the column's tokens)
    # A column's own marginal measured over its tokens, not its groups. The groups merge
    # a numeric column's bins (and a wide category's rare values) so that pairs stay
    # small, which left the tokens within a group where the network put them: nassCDS at
    # epsilon 1, public schema, ages 0.016 TVD from the data by group and 0.082 by token.
    # A 1-way release costs the same whatever its cells (sensitivity sqrt(C) over all
    # columns), so only its per-cell noise grows. False in artifacts before 2026-12-06.
    tokens: bool = False


Applied = Literal["resampling", "conditionals"]


class Calibration(BaseModel):
    """What sampling needs: token groups per column, the factor tables, and how they
    are applied: to whole rows by resampling a larger draw (any generator), or to each
    column's conditional as it is drawn (generators that draw column by column)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    groups: list[list[int]]  # groups[j][token] -> group of column j
    applied: Applied = "resampling"  # artifacts saved before issue 21 resample
    # model rows drawn per row sampled, so that resampling has distinct rows to pick
    oversample: float = Field(default=1.0, ge=1.0, le=MAX_OVERSAMPLE)
    marginals: list[MeasuredMarginal]

    @property
    def sizes(self) -> list[int]:
        """Groups per column."""
        return group_sizes(self.groups)

    def model_post_init(self, _context: object) -> None:
        if any(not g or min(g) < 0 for g in self.groups):
            raise ArtifactError("calibration groups must be non-empty and non-negative")
        for m in self.marginals:
            if not m.columns or not all(0 <= j < len(self.groups) for j in m.columns):
                raise ArtifactError(f"calibration marginal {m.columns} names no known column")
            if m.tokens and len(m.columns) != 1:
                raise ArtifactError(f"calibration marginal {m.columns} has tokens of a pair")
            sizes = self.resolution(m)
            cells = math.prod(sizes[j] for j in m.columns)
            if len(m.factors) != cells or min(m.factors, default=0.0) < 0:
                raise ArtifactError(f"calibration marginal {m.columns} has a broken factor table")

    def check(self, vocab_sizes: list[int]) -> None:
        """Refuse a calibration that does not fit the encoder it is loaded beside."""
        if [len(g) for g in self.groups] != vocab_sizes:
            raise ArtifactError("calibration groups do not match the encoder's vocabularies")

    def resolution(self, marginal: MeasuredMarginal) -> list[int]:
        """Cells per column that ``marginal``'s factors are laid over: every column's
        tokens, or its groups."""
        return [len(g) for g in self.groups] if marginal.tokens else self.sizes

    def weights(self, tokens: np.ndarray) -> np.ndarray:
        """Each row's tilt: the product of its cells' factors, at most ``WEIGHT_CAP``
        times the mean.  (rows,)"""
        grouped = self._grouped(tokens)
        w = np.ones(len(tokens))
        for m in self.marginals:
            rows = tokens if m.tokens else grouped
            w *= np.asarray(m.factors)[_cells(rows, m.columns, self.resolution(m))]
        return _capped(w)

    def resample(self, tokens: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
        """``size`` rows of ``tokens`` drawn in proportion to their tilt, systematically:
        one uniform offset and evenly spaced picks, so each row is taken within one of
        its expected count (multinomial draws add as much spread again, which a 9%
        minority resting on 1% of the model's rows feels)."""
        w = self.weights(tokens)
        total = w.sum()
        if not np.isfinite(total) or total <= 0:  # nothing matches: keep the model's rows
            return tokens[:size]
        cdf = np.cumsum(w) / total
        picks = np.searchsorted(cdf, (rng.random() + np.arange(size)) / size, side="right")
        return tokens[rng.permutation(np.minimum(picks, len(tokens) - 1))]

    def _grouped(self, tokens: np.ndarray) -> np.ndarray:
        lookups = [np.asarray(g) for g in self.groups]
        return np.stack([lookups[j][tokens[:, j]] for j in range(tokens.shape[1])], axis=1)


def group_sizes(groups: list[list[int]]) -> list[int]:
    """Groups per column, from each column's token -> group map."""
    return [max(g) + 1 for g in groups]


def _capped(weights: np.ndarray) -> np.ndarray:
    mean = weights.mean() if len(weights) else 0.0
    if not np.isfinite(mean) or mean <= 0:
        return weights
    return np.minimum(weights, WEIGHT_CAP * mean)


def _cells(grouped: np.ndarray, columns: list[int], sizes: list[int]) -> np.ndarray:
    index = np.zeros(len(grouped), dtype=np.int64)
    for j in columns:
        index = index * sizes[j] + grouped[:, j]
    return index


def token_groups(
    encoder: TableEncoder, pool: np.ndarray, *, apart_from: float = math.inf
) -> list[list[int]]:
    """Coarse groups of each column's tokens, from the model's own rows (free).

    A wide category keeps MAX_CATEGORY_GROUPS - 1 of its values apart and merges the
    rest, or, where ``apart_from`` is finite, every value the model gives at least that
    many rows of ``len(pool)`` (up to WIDE_CATEGORY_GROUPS - 1 values)."""
    groups = []
    for j, enc in enumerate(encoder.columns):
        counts = np.bincount(pool[:, j], minlength=enc.vocab_size).astype(float)
        if isinstance(enc, CategoricalEncoder):
            groups.append(_category_groups(counts, apart_from))
        else:
            groups.append(_numeric_groups(counts))
    return groups


def _category_groups(counts: np.ndarray, apart_from: float) -> list[int]:
    if len(counts) <= MAX_CATEGORY_GROUPS:
        return list(range(len(counts)))
    large = int((counts >= apart_from).sum())
    apart = min(max(MAX_CATEGORY_GROUPS - 1, large), WIDE_CATEGORY_GROUPS - 1, len(counts) - 1)
    kept = np.argsort(-counts, kind="stable")[:apart]
    groups = np.full(len(counts), apart)
    groups[kept] = np.arange(len(kept))
    return groups.tolist()


def _numeric_groups(counts: np.ndarray) -> list[int]:
    """Token 0 (missing) alone; the bins merged into runs of about equal model mass."""
    if len(counts) <= NUMERIC_GROUPS + 1:
        return list(range(len(counts)))
    mass = counts[1:] + 1e-9
    share = np.cumsum(mass) / mass.sum()
    runs = np.minimum((share * NUMERIC_GROUPS - 1e-9).astype(int), NUMERIC_GROUPS - 1)
    runs = np.maximum.accumulate(runs)
    _, dense = np.unique(runs, return_inverse=True)  # no empty group in between
    return [0, *(dense + 1).tolist()]


class Tilt(Protocol):
    """What a draw adds to column ``column``'s logits, given the rows drawn so far."""

    def __call__(self, column: int, tokens: Any) -> Any: ...


# ``draw(n, calibration)``: n rows of the trained model's tokens, tilted by a
# calibration, or by a tilt fitting itself as it draws (FittingTilt)
Draw = Callable[[int, "Calibration | Tilt | None"], np.ndarray]


def fit_calibration(
    draw: Draw,
    encoder: TableEncoder,
    real_tokens: np.ndarray,
    plan: CalibrationPlan,
    *,
    rows: float,
    rng: np.random.Generator,
    applied: Applied = "resampling",
) -> tuple[Calibration, list[list[int]]]:
    """Measure 1-way marginals, select pairs against the tilted model round by round,
    measure them, then fit the factors: the releases ``plan`` paid for.

    ``draw(n, calibration)`` returns ``n`` rows of the trained model's tokens, tilted by
    ``calibration`` when one is given; ``rows`` is the DP row count; ``applied`` says how
    sampling will apply the factors, which decides how they are fitted. Returns the
    calibration and the measured pairs (column indices).
    """
    pool = draw(POOL_ROWS, None)
    apart_from = math.inf  # resampled factors stay small (importance weights, issue 21)
    if applied == "conditionals":
        apart_from = CATEGORY_APART_SIGMAS * plan.measurement_sigma * len(pool) / max(rows, 1.0)
    groups = token_groups(encoder, pool, apart_from=apart_from)
    grouping = Calibration(groups=groups, marginals=[])
    releases = _Releases(
        pool, real_tokens, grouping._grouped(pool), grouping._grouped(real_tokens),
        groups, plan, rows, rng, _drawable(encoder),
    )  # fmt: skip
    singles = [[j] for j in range(len(groups))]
    single_cells = [pool[:, j] for j in range(len(groups))]  # over tokens, not groups
    single_targets = releases.one_way()
    pairs, pair_cells, pair_targets = releases.pairs(single_cells, single_targets)
    cliques = [[i, j] for i, j in pairs] + singles
    targets = consistent(cliques, pair_targets + single_targets, groups)
    if applied == "conditionals":
        return _fit_conditionals(draw, groups, cliques, targets), [list(p) for p in pairs]
    tilted = _with_factors(groups, cliques, _ipf(pair_cells + single_cells, targets))
    oversample = _oversample(tilted.weights(pool), releases.model)
    return tilted.model_copy(update={"oversample": oversample}), [list(p) for p in pairs]


@dataclass
class _Releases:
    """The calibration's releases: the model's pool and the data, as tokens and as
    groups, and the noise the plan paid for."""

    pool: np.ndarray
    real: np.ndarray
    model: np.ndarray  # the pool's groups
    data: np.ndarray  # the data's groups
    groups: list[list[int]]  # groups[j][token] -> group of column j
    plan: CalibrationPlan
    rows: float
    rng: np.random.Generator
    drawable: list[np.ndarray]  # per column, whether the model can draw each token

    @property
    def sizes(self) -> list[int]:
        """Groups per column."""
        return group_sizes(self.groups)

    def release(self, theirs: np.ndarray, cells: int) -> np.ndarray:
        """The data's counts of its cells ``theirs``, each with Gaussian noise of the
        plan's measurement sigma: the one step of a measurement that reads the data
        (selection reads it too, in ``_select_pairs``)."""
        sigma = self.plan.measurement_sigma
        return np.bincount(theirs, minlength=cells) + self.rng.normal(0.0, sigma, cells)

    def prior(
        self,
        noisy: np.ndarray,
        ours: np.ndarray,
        reachable: np.ndarray,
        weights: np.ndarray,
        independent: np.ndarray | None = None,
    ) -> np.ndarray:
        """The prior of released ``noisy`` counts over their ``reachable`` cells: the
        model's ``weights``-tilted counts of its cells ``ours``, or its mixture with
        ``independent`` (a pair's columns drawn apart, from their measured marginals)
        that the noisy counts themselves favour (``_prior_by_evidence``)."""
        prior = np.bincount(ours, weights=weights, minlength=len(reachable)) * self.rows
        prior = prior[reachable]
        if independent is not None and reachable.any():
            sigma = self.plan.measurement_sigma
            prior = _prior_by_evidence(
                noisy[reachable], prior, independent[reachable] * self.rows, sigma
            )
        return prior

    def estimate(
        self,
        noisy: np.ndarray,
        reachable: np.ndarray,
        prior: np.ndarray,
        chains: list[np.ndarray] | None = None,
    ) -> np.ndarray:
        """Released ``noisy`` counts shrunk toward their ``prior`` (``_Releases.prior``), or toward
        one of ``chains`` (the pair through a third column, ``_chain_priors``) where the
        counts favour that.

        Only the ``reachable`` cells are estimated; the rest (a token the model never
        draws: missing in a column that holds none, "other" where rare values are not
        sampled) are set to zero. Their noisy counts are released all the same (the
        noise is per cell; the cost is by sensitivity) but no tilt could reach them, and
        kept they are noise in the spread, the evidence and the table's total.
        """
        sigma = self.plan.measurement_sigma
        estimate = np.zeros(len(reachable))
        if not reachable.any():  # a column the model draws nothing of but never-drawn tokens
            return estimate
        noisy = noisy[reachable]
        if chains:
            prior = _likeliest(noisy, [prior, *(chain[reachable] for chain in chains)], sigma)
        estimate[reachable] = _shrunk(noisy, prior, sigma)
        return estimate

    def reachable_groups(self, j: int) -> np.ndarray:
        """Whether the model can draw some token of each of column j's groups."""
        return np.bincount(self.groups[j], weights=self.drawable[j], minlength=self.sizes[j]) > 0

    def shares(self, tokens: np.ndarray, j: int) -> np.ndarray:
        """Column j's shares of its groups, from counts over its tokens."""
        counts = np.bincount(
            self.groups[j], weights=np.clip(tokens, 0.0, None), minlength=self.sizes[j]
        )
        total = counts.sum()
        return counts / total if total > 0 else np.full(len(counts), 1 / len(counts))

    def one_way(self) -> list[np.ndarray]:
        """Every column's marginal over its tokens."""
        uniform = np.full(len(self.pool), 1 / len(self.pool))
        out = []
        for j in range(len(self.groups)):
            noisy = self.release(self.real[:, j], len(self.drawable[j]))
            prior = self.prior(noisy, self.pool[:, j], self.drawable[j], uniform)
            out.append(self.estimate(noisy, self.drawable[j], prior))
        return out

    def pairs(
        self, single_cells: list[np.ndarray], single_targets: list[np.ndarray]
    ) -> tuple[list[tuple[int, int]], list[np.ndarray], list[np.ndarray]]:
        """Pairs selected round by round against the pool tilted onto everything
        measured before, and measured: the pairs, their pool cells and targets."""
        pairs: list[tuple[int, int]] = []
        pair_cells: list[np.ndarray] = []
        pair_targets: list[np.ndarray] = []
        singles = [[j] for j in range(len(single_cells))]
        reachable = [self.reachable_groups(j) for j in range(len(single_cells))]
        for count in self.plan.round_sizes():  # one round when every pair is measured
            cells = pair_cells + single_cells
            cliques = [list(p) for p in pairs] + singles
            agreed = consistent(cliques, pair_targets + single_targets, self.groups)
            shares = [self.shares(t, j) for j, t in enumerate(agreed[len(pairs) :])]
            tilt = _capped(_product(cells, _ipf(cells, agreed)))
            tilt /= tilt.sum()
            chosen = _select_pairs(
                self.model, tilt, self.data, self.sizes, self.plan, rows=self.rows,
                rng=self.rng, count=count, measured=pairs,
            )  # fmt: skip
            released = []
            for i, j in chosen:
                pair_cells.append(_cells(self.model, [i, j], self.sizes))
                reachable_ij = np.outer(reachable[i], reachable[j]).ravel()
                noisy = self.release(_cells(self.data, [i, j], self.sizes), len(reachable_ij))
                apart = np.outer(shares[i], shares[j]).ravel()
                prior = self.prior(noisy, pair_cells[-1], reachable_ij, tilt, apart)
                released.append((noisy, reachable_ij, prior))
                pair_targets.append(self.estimate(noisy, reachable_ij, prior))
            pairs += chosen
            if len(pairs) == len(chosen) == self.plan.pairs_total:  # every pair, one round
                given = _conditionals(pairs, pair_targets, self.sizes)
                for k, (i, j) in enumerate(pairs):
                    noisy, reachable_ij, prior = released[k]
                    chains = _chain_priors(i, j, given, shares, self.rows)
                    pair_targets[k] = self.estimate(noisy, reachable_ij, prior, chains)
        return pairs, pair_cells, pair_targets


def _conditionals(
    pairs: list[tuple[int, int]], estimates: list[np.ndarray], sizes: list[int]
) -> dict[tuple[int, int], np.ndarray]:
    """P(a | k) for both columns of every estimated pair, keyed (a, k): each a
    (sizes[a], sizes[k]) table whose columns sum to 1 (0 where k's group is empty)."""
    given = {}
    for (a, k), estimate in zip(pairs, estimates, strict=True):
        table = estimate.reshape(sizes[a], sizes[k])
        for key, joint in (((a, k), table), ((k, a), table.T)):
            total = joint.sum(axis=0, keepdims=True)
            given[key] = np.divide(joint, total, out=np.zeros_like(joint), where=total > 0)
    return given


def _chain_priors(
    i: int,
    j: int,
    given: dict[tuple[int, int], np.ndarray],
    shares: list[np.ndarray],
    rows: float,
) -> list[np.ndarray]:
    """Priors for pair (i, j), one per third column k: i and j independent given k,
    from ``given`` (``_conditionals`` of the other pairs' estimates: post-processing of
    their releases, whose noise is not this pair's).

    The network's pair and the columns drawn apart both miss a strong association
    that DP-SGD did not learn: fair's yrs_married x children, 0.35-0.39 TVD from the
    training rows for either prior, kept 0.09 after shrinkage; through age, which
    holds most of both, the pair is most of the way there (0.07).
    """
    return [
        ((given[(i, k)] * shares[k][None, :]) @ given[(j, k)].T).ravel() * rows
        for k in range(len(shares))
        if k not in (i, j) and (i, k) in given and (j, k) in given
    ]


def _drawable(encoder: TableEncoder) -> list[np.ndarray]:
    """Per column, whether sampling can draw each token (never-sampled ones cannot)."""
    masks = []
    for enc in encoder.columns:
        mask = np.ones(enc.vocab_size, dtype=bool)
        mask[enc.never_sampled()] = False
        masks.append(mask)
    return masks


def _over_tokens(clique: list[int]) -> bool:
    """A column's own marginal is measured over its tokens, a pair over groups."""
    return len(clique) == 1


def _with_factors(
    groups: list[list[int]],
    cliques: list[list[int]],
    factors: list[np.ndarray],
    applied: Applied = "resampling",
) -> Calibration:
    marginals = [
        MeasuredMarginal(columns=c, factors=f.tolist(), tokens=_over_tokens(c))
        for c, f in zip(cliques, factors, strict=True)
    ]
    return Calibration(groups=groups, marginals=marginals, applied=applied)


def _fit_conditionals(
    draw: Draw, groups: list[list[int]], cliques: list[list[int]], targets: list[np.ndarray]
) -> Calibration:
    """Log-factors for a chain that applies each clique at its last column, fitted in
    one draw of FIT_POOL_ROWS rows that fits each column's tables as it reaches it
    (``FittingTilt``; post-processing: no data, only the targets)."""
    from training.fitting_tilt import FittingTilt  # torch: the fit's import only

    fitting = FittingTilt(groups, cliques, targets, [_over_tokens(c) for c in cliques])
    draw(FIT_POOL_ROWS, fitting)
    return _with_factors(groups, fitting.cliques, fitting.factors(), "conditionals")


def _oversample(weights: np.ndarray, grouped: np.ndarray) -> float:
    """Model rows to draw per row sampled, so that every column group the tilt asks
    for (1% of rows or more) finds, per row it should fill, POOL_ESS_SHARE effective
    rows to pick from; at most MAX_OVERSAMPLE.

    Kish's effective size of each group's weighted rows against the share the tilt
    gives it: a 9% part-time minority resting on 1% of the model's rows needs the
    pool about four times the sample, where the whole table's effective size says 1.
    """
    total = weights.sum()
    if not np.isfinite(total) or total <= 0:
        return 1.0
    needed = 1.0
    for j in range(grouped.shape[1]):
        mass = np.bincount(grouped[:, j], weights=weights)
        square = np.bincount(grouped[:, j], weights=weights**2)
        for g in np.flatnonzero(mass >= 0.01 * total):
            effective = mass[g] ** 2 / square[g]
            needed = max(needed, POOL_ESS_SHARE * len(weights) * (mass[g] / total) / effective)
    return float(min(needed, MAX_OVERSAMPLE))


def _prior_by_evidence(
    noisy: np.ndarray, model: np.ndarray, independent: np.ndarray, sigma: float
) -> np.ndarray:
    """The mixture of two priors for a pair's counts, ``model`` (the network tilted
    onto what is measured) and ``independent`` (its columns apart), whose weight makes
    the noisy counts likeliest under ``_shrunk``'s spread (post-processing: the noisy
    release alone; empirical Bayes).

    DP-SGD at epsilon 1 blurs pairs and adds dependence of its own: the network's pairs,
    tilted onto the measured column shares, were further from the data than the columns
    drawn apart (all-pairs TVD against the training rows, fair 0.16-0.21 against
    0.085-0.093, nassCDS 0.094 against 0.067), and a count pulled toward it kept that
    error. Where the network has learned a pair (more rows, more epsilon) its weight
    comes back by the same evidence.
    """
    candidates = [w * model + (1 - w) * independent for w in PRIOR_WEIGHTS]
    return _likeliest(noisy, candidates, sigma)


def _likeliest(noisy: np.ndarray, candidates: list[np.ndarray], sigma: float) -> np.ndarray:
    """The candidate prior under which ``noisy`` is likeliest (``_log_evidence``)."""
    evidence = [_log_evidence(noisy, prior, sigma) for prior in candidates]
    return candidates[int(np.argmax(evidence))]


def _log_evidence(noisy: np.ndarray, prior: np.ndarray, sigma: float) -> float:
    """Log-likelihood of ``noisy`` around ``prior`` with ``_shrunk``'s variance."""
    variance = _spread_variance(noisy, prior, sigma)
    return float(np.sum(_log_normal(noisy, prior, variance + sigma**2)))


def _shrunk(noisy: np.ndarray, prior: np.ndarray, sigma: float) -> np.ndarray:
    """Each noisy count pulled toward the model's by the share of its gap that the
    noise explains, and toward zero by the chance that the cell is empty, then clipped
    at zero (post-processing; empirical Bayes).

    The data's count of a cell is taken to spread around the model's by a variance
    in proportion to the model's count (tau^2 * prior, tau^2 from the gaps' spread
    beyond the noise), so a cell the model holds few rows in, where a noise of sigma
    would swamp the count, keeps little of its measurement, and a large cell keeps
    most. One pull for the whole table (James-Stein, until 2026-12-06) kept the noise
    of a pair's many small cells: nassCDS at epsilon 1, 14 measured pairs of 16-180
    cells, noisy counts shrunk toward a DP model 0.008-0.088 TVD from the data by one
    pull and 0.002-0.061 by the cell's (20 noise draws each).

    Some cells hold no row at all where the model puts many: a neighbourhood lies in
    one police precinct, a code goes with one label. Pulled toward the model, such a
    cell keeps its positive noise (about 0.4 sigma rows each), and MplsStops' synthetic
    stops put 35% of rows in a neighbourhood and precinct that never go together. So
    each cell is also either empty, with a share of the table's cells learned from the
    noisy counts themselves (``_empty_chance``), or spread as above, and its estimate
    is the spread one's times the chance that it is not empty.
    """
    if sigma <= 0:
        return np.clip(noisy, 0.0, None)
    gap = noisy - prior
    variance = _spread_variance(noisy, prior, sigma)
    pulled = prior + variance / (variance + sigma**2) * gap
    empty = _empty_chance(noisy, prior, sigma, variance)
    return np.clip((1.0 - empty) * pulled, 0.0, None)


def _spread_variance(noisy: np.ndarray, prior: np.ndarray, sigma: float) -> np.ndarray:
    """Each cell's variance of the data around the prior, beyond the noise: tau^2 times
    the prior's count plus a row (so that a cell the model never drew keeps a little),
    tau^2 from the gaps' spread beyond sigma^2."""
    gap = noisy - prior
    spread = prior + 1.0
    tau2 = max(float(np.sum(gap**2) - len(gap) * sigma**2) / float(spread.sum()), 0.0)
    return tau2 * spread


def _empty_chance(
    noisy: np.ndarray, prior: np.ndarray, sigma: float, variance: np.ndarray
) -> np.ndarray:
    """Each cell's chance of holding no row: a two-part mixture, a cell empty (its
    noisy count N(0, sigma^2)) with a share of cells fitted by expectation-maximisation,
    or spread around the model (N(prior, variance + sigma^2)). A table with no empty
    cells fits a share near zero and keeps its estimates."""
    log_empty = _log_normal(noisy, 0.0, sigma**2)
    log_spread = _log_normal(noisy, prior, variance + sigma**2)
    share = EMPTY_START
    chance = np.zeros_like(noisy)
    for _ in range(EMPTY_ITERATIONS):
        odds = np.log1p(-share) + log_spread - np.log(share) - log_empty
        chance = 1.0 / (1.0 + np.exp(np.clip(odds, -50.0, 50.0)))
        share = float(np.clip(chance.mean(), 1e-4, 1 - 1e-4))
    return chance


def _log_normal(
    x: np.ndarray, mean: float | np.ndarray, variance: float | np.ndarray
) -> np.ndarray:
    return -0.5 * ((x - mean) ** 2 / variance + np.log(2 * np.pi * variance))


def _select_pairs(
    model: np.ndarray,
    weights: np.ndarray,
    data: np.ndarray,
    sizes: list[int],
    plan: CalibrationPlan,
    *,
    rows: float,
    rng: np.random.Generator,
    count: int,
    measured: list[tuple[int, int]],
) -> list[tuple[int, int]]:
    """The ``count`` pairs not yet ``measured`` that the tilted model misses most, by
    noisy score (every pair when all are to be measured).

    A pair scores the L1 distance of the data's counts from the model's ``weights``-
    tilted shares scaled to ``rows``, less the error its own measurement would have
    (AIM). The model side is fixed before the data is scored, so one row moves a score
    by at most 1.
    """
    everything = list(itertools.combinations(range(len(sizes)), 2))
    if plan.pairs_measured >= len(everything):
        return everything
    pairs = [p for p in everything if p not in measured]
    scores = np.empty(len(pairs))
    for k, (i, j) in enumerate(pairs):
        cells = sizes[i] * sizes[j]
        index = _cells(model, [i, j], sizes)
        ours = np.bincount(index, weights=weights, minlength=cells) * rows
        real = np.bincount(_cells(data, [i, j], sizes), minlength=cells)
        expected_noise = math.sqrt(2 / math.pi) * plan.measurement_sigma * cells
        scores[k] = float(np.abs(real - ours).sum()) - expected_noise
    noisy = scores + rng.normal(0.0, plan.selection_sigma, len(pairs))
    return [pairs[k] for k in np.argsort(-noisy)[:count]]


def _product(cells: list[np.ndarray], factors: list[np.ndarray]) -> np.ndarray:
    """Each row's product of its cells' factors."""
    w = np.ones(len(cells[0]))
    for index, f in zip(cells, factors, strict=True):
        w *= f[index]
    return w


def _ipf(cells: list[np.ndarray], targets: list[np.ndarray]) -> list[np.ndarray]:
    """Factor tables whose product reweights the pool's rows onto the targets' shares;
    ``cells[k]`` holds each pool row's cell of marginal k.

    Each factor stays within [1/FACTOR_CAP, FACTOR_CAP]: a cell the model almost never
    draws, with a noisy count above zero, would otherwise get a factor in the
    thousands, and a handful of rows would fill the sample. Uncapped, fair at epsilon 1
    scored 0.876-0.887 against 0.892-0.895 at a cap of 10. Since pairs are scored
    against the 1-way tilt, several measured pairs share a rare category (CPS1988's
    part-time with wage and with experience), and the product of their capped factors
    at 10 could still rest on a few pool rows: a fresh pool then showed 4% or 13%
    part-time for 9%. At 5: sdmetrics quality on CPS1988 0.948 against 0.933, fair
    0.912 against 0.917 (5 fits each, within their spread), part-time within 2 points.

    The rows' weights are the capped product of the factors, as ``Calibration.weights``
    applies them at sampling. Capping the running weights after each update instead let
    them drift from that product where the cap binds: a generator drawing fair's columns
    apart met its pair targets in the fit and missed its 1-way ones by 0.03-0.08 TV when
    sampled (issue 21).
    """
    shares = [t / t.sum() if t.sum() > 0 else None for t in targets]
    factors = [np.ones(len(t)) for t in targets]
    log_product = np.zeros(len(cells[0]))  # each row's uncapped product of factors
    w = np.ones(len(cells[0])) / len(cells[0])
    for _ in range(IPF_ITERATIONS):
        worst = 0.0
        for k, share in enumerate(shares):
            if share is None:
                continue
            current = np.bincount(cells[k], weights=w, minlength=len(share))
            ratio = np.where(current > 0, share / np.maximum(current, 1e-300), 1.0)
            updated = np.clip(factors[k] * ratio, 1 / FACTOR_CAP, FACTOR_CAP)
            log_product += np.log(updated / factors[k])[cells[k]]
            w = _capped(np.exp(log_product - log_product.max()))
            w /= w.sum()
            factors[k] = updated
            worst = max(worst, float(np.abs(current - share).max()))
        if worst < IPF_TOLERANCE:
            break
    return [f / f.mean() for f in factors]

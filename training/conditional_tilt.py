"""A calibration's factors applied inside an autoregressive draw, column by column.

Importance resampling tilts whole rows by the product of their factors; with many
measured marginals that product degenerates onto a few rows (issue 21: one token-row
repeated 1,193 times). A generator that draws one column at a time can instead add
each factor's log to the logits of the column it ends on: when column j is drawn,
every measured marginal whose last free column is j contributes its factor for the
groups already drawn (or fixed by ``where=``) and each candidate token of j. Every
row is then a fresh draw from a tilted chain: nothing is resampled, nothing repeats,
and a deterministic pair (a code and its label) becomes a near-zero factor on the
inconsistent cells, which the conditional renormalizes away.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np
import torch

from training.calibration import Calibration

__all__ = ["ConditionalTilt", "FittingTilt"]

# FittingTilt: proportional-fitting sweeps per column, stopped when every measured
# marginal's rows are within this share of the pool; half a row of smoothing keeps an
# empty cell's step finite; log-factors bounded as the earlier fit's were
FIT_ITERATIONS = 60
FIT_TOLERANCE = 2e-3
FIT_SMOOTH = 0.5
LOG_BOUNDS = (-8.0, 5.0)


class ConditionalTilt:
    """What the calibration adds to each column's logits, given the columns fixed."""

    def __init__(self, calibration: Calibration, fixed: Collection[int] = ()) -> None:
        self._groups = [torch.tensor(g, dtype=torch.long) for g in calibration.groups]
        sizes = calibration.sizes
        # column -> [(the other columns, their group sizes, log-table (their cells, V_j))]
        self._terms: dict[int, list[tuple[list[int], list[int], torch.Tensor]]] = {}
        for marginal in calibration.marginals:
            free = [c for c in marginal.columns if c not in fixed]
            if not free:
                continue  # every column fixed: a constant factor
            last = max(free)  # columns are drawn in index order
            shape = [sizes[c] for c in marginal.columns]
            table = np.log(np.maximum(np.asarray(marginal.factors), 1e-300)).reshape(shape)
            axis = marginal.columns.index(last)
            table = np.moveaxis(table, axis, -1)
            others = [c for c in marginal.columns if c != last]
            flat = torch.from_numpy(
                np.ascontiguousarray(table.reshape(math.prod(shape[:axis] + shape[axis + 1 :]), -1))
            ).float()
            per_token = flat[:, self._groups[last]]  # (cells of the others, V_last)
            self._terms.setdefault(last, []).append((others, [sizes[c] for c in others], per_token))

    def __call__(self, column: int, tokens: torch.Tensor) -> torch.Tensor | None:
        """Log-factors to add to ``column``'s logits for each row of ``tokens``.  (N, V)"""
        terms = self._terms.get(column)
        if not terms:
            return None
        total: torch.Tensor | None = None
        for others, sizes, table in terms:
            if not others:
                add = table.expand(len(tokens), -1)
            else:
                index = torch.zeros(len(tokens), dtype=torch.long)
                for c, size in zip(others, sizes, strict=True):
                    index = index * size + self._groups[c][tokens[:, c]]
                add = table[index]
            total = add if total is None else total + add
        return total


class FittingTilt:
    """A tilt that fits its own log-tables while drawing, one column at a time.

    When column j is about to be drawn, the rows' earlier columns come from the chain
    already tilted, and the network's logits for j are at hand, so the expected counts
    of every measured marginal ending on j are exact sums of the tilted conditionals:
    iterative proportional fitting on those sums sets j's tables (a column's own
    marginal to its measured share; a pair's to the measured share of j given the
    earlier column's group, so the earlier column's share is left to its own table).
    One pass of one draw fits the chain; the earlier fit redrew the pool 14 times and,
    with steps damped by the marginals sharing a column, stopped short of the targets
    (issue 21: yrbss with every pair measured exactly still missed them by 0.071 TVD).
    Post-processing: only the targets and the model are read.
    """

    def __init__(
        self, groups: list[list[int]], cliques: list[list[int]], targets: list[np.ndarray]
    ) -> None:
        self._groups = [torch.tensor(g, dtype=torch.long) for g in groups]
        self.sizes = [max(g) + 1 for g in groups]
        self.cliques = [sorted(c) for c in cliques]
        self._targets = [t / t.sum() if t.sum() > 0 else None for t in targets]
        self._logs = [
            np.zeros((math.prod(self.sizes[c] for c in clique[:-1]), self.sizes[clique[-1]]))
            for clique in self.cliques
        ]

    def factors(self) -> list[np.ndarray]:
        """Each clique's factor table, row-major over its columns' groups."""
        return [np.exp(x).ravel() for x in self._logs]

    def _cells(self, clique: list[int], tokens: torch.Tensor) -> torch.Tensor:
        index = torch.zeros(len(tokens), dtype=torch.long)
        for c in clique[:-1]:
            index = index * self.sizes[c] + self._groups[c][tokens[:, c]]
        return index

    def __call__(self, column: int, tokens: torch.Tensor) -> torch.Tensor | None:
        ending = [k for k, c in enumerate(self.cliques) if c[-1] == column]
        if not ending:
            return None
        groups = self._groups[column]
        total = torch.zeros(len(tokens), len(groups))
        for k in ending:
            table = torch.from_numpy(self._logs[k]).float()[:, groups]
            total += table[self._cells(self.cliques[k], tokens)]
        return total

    def fit(
        self, column: int, tokens: torch.Tensor, logits: torch.Tensor, weights: torch.Tensor
    ) -> None:
        """Fit the tables of the marginals ending on ``column`` to the rows ``tokens``
        (their earlier columns drawn), whose untilted ``logits`` for it are given and
        each of which stands for ``weights`` rows."""
        ending = [
            k
            for k, c in enumerate(self.cliques)
            if c[-1] == column and self._targets[k] is not None
        ]
        if not ending:
            return
        size = self.sizes[column]
        groups = self._groups[column]
        # the network's probability of each group of the column, per row
        base = torch.softmax(logits.double(), dim=1)
        grouped = torch.zeros(len(tokens), size, dtype=torch.float64).index_add_(1, groups, base)
        log_base = torch.log(grouped.clamp_min(1e-300)).numpy()
        w = weights.double().numpy()
        cells = [self._cells(self.cliques[k], tokens).numpy() for k in ending]
        wanted = []
        for k, index in zip(ending, cells, strict=True):
            target = self._targets[k].reshape(-1, size)  # type: ignore[union-attr]
            held = np.bincount(index, weights=w, minlength=len(target))
            given = target / np.maximum(target.sum(1, keepdims=True), 1e-300)
            wanted.append(held[:, None] * given)  # the measured conditional, these rows
        for _ in range(FIT_ITERATIONS):
            worst = 0.0
            for k, index, want in zip(ending, cells, wanted, strict=True):
                p = self._conditionals(log_base, ending, cells)
                have = np.zeros_like(want)
                np.add.at(have, index, p * w[:, None])
                step = np.log(want + FIT_SMOOTH) - np.log(have + FIT_SMOOTH)
                self._logs[k] = np.clip(self._logs[k] + step, *LOG_BOUNDS)
                worst = max(worst, float(np.abs(want - have).sum()) / max(w.sum(), 1.0))
            if worst < FIT_TOLERANCE:
                break

    def _conditionals(
        self, log_base: np.ndarray, ending: list[int], cells: list[np.ndarray]
    ) -> np.ndarray:
        logit = log_base.copy()
        for k, index in zip(ending, cells, strict=True):
            logit += self._logs[k][index]
        logit -= logit.max(1, keepdims=True)
        p = np.exp(logit)
        return p / p.sum(1, keepdims=True)

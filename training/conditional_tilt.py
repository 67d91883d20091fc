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
from training.fitting_tilt import group_cells

__all__ = ["ConditionalTilt"]


class ConditionalTilt:
    """What the calibration adds to each column's logits, given the columns fixed."""

    def __init__(self, calibration: Calibration, fixed: Collection[int] = ()) -> None:
        self._groups = [torch.tensor(g, dtype=torch.long) for g in calibration.groups]
        # column -> [(the other columns, their group sizes, log-table (their cells, V_j))]
        self._terms: dict[int, list[tuple[list[int], list[int], torch.Tensor]]] = {}
        for marginal in calibration.marginals:
            free = [c for c in marginal.columns if c not in fixed]
            if not free:
                continue  # every column fixed: a constant factor
            last = max(free)  # columns are drawn in index order
            sizes = calibration.resolution(marginal)
            shape = [sizes[c] for c in marginal.columns]
            table = np.log(np.maximum(np.asarray(marginal.factors), 1e-300)).reshape(shape)
            axis = marginal.columns.index(last)
            table = np.moveaxis(table, axis, -1)
            others = [c for c in marginal.columns if c != last]
            flat = torch.from_numpy(
                np.ascontiguousarray(table.reshape(math.prod(shape[:axis] + shape[axis + 1 :]), -1))
            ).float()
            # (cells of the others, V_last)
            per_token = flat if marginal.tokens else flat[:, self._groups[last]]
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
                add = table[group_cells(others, sizes, self._groups, tokens)]
            total = add if total is None else total + add
        return total

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
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional

from training.calibration import Calibration
from training.fitting_tilt import group_cells

__all__ = ["ConditionalTilt"]


@dataclass(frozen=True)
class _ColumnTerms:
    """Everything the marginals ending on one column add to its logits.

    The tables are stacked into one (cells, V) matrix so that a row's sum over them is
    one fused gather-and-add (``embedding_bag``) instead of a gather and an add per
    table: with every pair of a 15-column table measured, seven tables a column on
    average, that was a quarter of the sampling time (DoctorContacts, one thread).
    """

    constant: torch.Tensor | None  # (V,) the tables over this column alone
    stacked: torch.Tensor  # (cells of every table with other columns, V)
    pair_columns: torch.Tensor  # (pairs,) the other column of each pair table
    pair_lookup: torch.Tensor  # flat: pair k's token t -> its row of ``stacked``
    pair_base: torch.Tensor  # (pairs,) where pair k's tokens start in ``pair_lookup``
    wider: list[tuple[list[int], list[int], int]]  # others, their sizes, first row
    groups: list[torch.Tensor]  # token -> group, per column (the wider cliques' cells)

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        parts = []
        if len(self.pair_columns):
            parts.append(self.pair_lookup[tokens[:, self.pair_columns] + self.pair_base])
        for others, sizes, start in self.wider:
            parts.append((group_cells(others, sizes, self.groups, tokens) + start)[:, None])
        if not parts:
            assert self.constant is not None
            return self.constant.expand(len(tokens), -1)
        summed = functional.embedding_bag(torch.cat(parts, dim=1), self.stacked, mode="sum")
        return summed if self.constant is None else summed.add_(self.constant)


class ConditionalTilt:
    """What the calibration adds to each column's logits, given the columns fixed."""

    def __init__(self, calibration: Calibration, fixed: Collection[int] = ()) -> None:
        groups = [torch.tensor(g, dtype=torch.long) for g in calibration.groups]
        # column -> [(the other columns, their group sizes, log-table (their cells, V_j))]
        terms: dict[int, list[tuple[list[int], list[int], torch.Tensor]]] = {}
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
            per_token = flat if marginal.tokens else flat[:, groups[last]]
            terms.setdefault(last, []).append((others, [sizes[c] for c in others], per_token))
        self._columns = {j: _stacked(found, groups) for j, found in terms.items()}

    def __call__(self, column: int, tokens: torch.Tensor) -> torch.Tensor | None:
        """Log-factors to add to ``column``'s logits for each row of ``tokens``.  (N, V)"""
        terms = self._columns.get(column)
        return None if terms is None else terms(tokens)


def _stacked(
    terms: list[tuple[list[int], list[int], torch.Tensor]], groups: list[torch.Tensor]
) -> _ColumnTerms:
    """One column's tables in the layout ``_ColumnTerms`` sums in one call."""
    constant = None
    tables: list[torch.Tensor] = []
    pair_columns: list[int] = []
    lookups: list[torch.Tensor] = []
    bases: list[int] = []  # where each pair's lookup starts in their concatenation
    looked_up = 0
    wider: list[tuple[list[int], list[int], int]] = []
    start = 0
    for others, sizes, table in terms:
        if not others:
            constant = table[0] if constant is None else constant + table[0]
            continue
        tables.append(table)
        if len(others) == 1:  # a pair: the other column's token names the row directly
            pair_columns.append(others[0])
            bases.append(looked_up)
            lookups.append(groups[others[0]] + start)
            looked_up += len(lookups[-1])
        else:  # a wider clique: its cell index is computed from its columns' groups
            wider.append((others, sizes, start))
        start += len(table)
    width = terms[0][2].shape[1]
    return _ColumnTerms(
        constant=constant,
        stacked=torch.cat(tables) if tables else torch.zeros(0, width),
        pair_columns=torch.tensor(pair_columns, dtype=torch.long),
        pair_lookup=torch.cat(lookups) if lookups else torch.zeros(0, dtype=torch.long),
        pair_base=torch.tensor(bases, dtype=torch.long),
        wider=wider,
        groups=groups,
    )

"""Noisy marginals made to agree with each other before a model is fitted to them.

A column measured on its own (over its tokens) and inside every pair that holds it
(over its groups) is counted several times, each with its own noise. Fitted as they
come, the tables ask for different shares of the same column: the fit cannot meet
them all, oscillates between them and pushes cells to its bounds (issue 21: nassCDS
at epsilon 1 with every pair measured, proportional fitting stopped 0.03-0.09 L1 from
its targets, where exact targets converged within 0.002). private-pgm avoids this by
fitting one model to every measurement at once; the least-squares answer for
marginals that overlap on single columns is simpler (Qardaji et al., PriView, 2014):
every table's projection onto a shared column is replaced by the inverse-variance
weighted mean of all of them, the difference spread evenly over the cells that sum
into it. With equal totals, moving one column's projection leaves every other
column's untouched, so one pass makes the set consistent; clipping negatives to zero
breaks that slightly, so the pass repeats. Post-processing: noisy releases in, no data.
"""

from __future__ import annotations

import numpy as np

__all__ = ["consistent"]

PASSES = 10  # nassCDS' three columns: disagreement 49 after one pass, 13 after 3, 0.8 after 10


def consistent(
    cliques: list[list[int]], targets: list[np.ndarray], groups: list[list[int]]
) -> list[np.ndarray]:
    """The ``targets`` (noisy counts, a column's own over its tokens and a pair's over
    its columns' groups, row-major) adjusted to agree on every shared column's groups
    and total, non-negative. ``groups[j][token]`` is column j's group of a token."""
    maps = [np.asarray(g) for g in groups]
    sizes = [int(g.max()) + 1 for g in maps]
    tables = [np.asarray(t, dtype=float).copy() for t in targets]
    shared = [[k for k, c in enumerate(cliques) if j in c] for j in range(len(maps))]
    for _ in range(PASSES):
        _same_total(tables)
        for j, members in enumerate(shared):
            if len(members) > 1:
                _agree_on(j, [(cliques[k], tables[k]) for k in members], maps, sizes)
        for t in tables:
            np.clip(t, 0.0, None, out=t)
    _same_total(tables)
    return tables


def _same_total(tables: list[np.ndarray]) -> None:
    """Every table scaled to one total: their totals' mean weighted by the inverse of
    the cells each sums (its noise variance)."""
    totals = np.array([t.sum() for t in tables])
    weights = np.array([1 / len(t) for t in tables])
    held = totals > 0  # a table of a column the model never draws is all zero
    if not held.any():
        return
    common = float((totals[held] * weights[held]).sum() / weights[held].sum())
    for t, total in zip(tables, totals, strict=True):
        if total > 0:
            t *= common / total


def _agree_on(
    j: int, members: list[tuple[list[int], np.ndarray]], maps: list[np.ndarray], sizes: list[int]
) -> None:
    """Set each member's projection onto column j's groups to their weighted mean, in
    place. A projection summing m cells of a group has variance m (equal noise per
    cell), and its correction is spread over those m cells."""
    projections, summed = [], []  # per member: counts of j's groups, cells per group
    for clique, table in members:
        if len(clique) == 1:  # tokens, summed within each group
            summed.append(np.bincount(maps[j], minlength=sizes[j]).astype(float))
            projections.append(np.bincount(maps[j], weights=table, minlength=sizes[j]))
        else:
            other = sizes[clique[1] if clique[0] == j else clique[0]]
            summed.append(np.full(sizes[j], float(other)))
            grid = table.reshape(sizes[clique[0]], sizes[clique[1]])
            projections.append(grid.sum(axis=1 if clique[0] == j else 0))
    inverse = [1 / m for m in summed]
    mean = sum(p * w for p, w in zip(projections, inverse, strict=True)) / sum(inverse)
    for (clique, table), p, cells in zip(members, projections, summed, strict=True):
        step = (mean - p) / cells  # per cell of each group
        if len(clique) == 1:
            table += step[maps[j]]
        else:
            grid = table.reshape(sizes[clique[0]], sizes[clique[1]])
            grid += step[:, None] if clique[0] == j else step[None, :]

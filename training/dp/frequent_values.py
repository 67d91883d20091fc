"""Frequent values of a numeric column, released under DP without a walk over its grid.

A numeric column often sits on a few values: ages written as whole years in a column
with one decimal, weights converted from whole pounds, log family sizes printed to six
places, hours turnaround in tenths. Quantile bins with a within-bin shape cannot hold
such spikes: a value drawn inside a bin lands beside the spike, and real rows pushed
through the encoder already lost 0.08-0.91 TVD on such columns (issue 21; yrbss
weight, covid_testing age and turnaround, DoctorContacts' logs). So each numeric
column whose values are whole steps gets one more Gaussian histogram, over every step
of its range, and the values whose noisy count passes a threshold become known
values that decoding returns exactly.

The histogram has L2 sensitivity 1 like every other (one row adds 1 to one value);
the grid is public (the column's bounds and step). A grid can hold 10^9 steps (cents
over a million), so noise is drawn for the values that hold rows, and the empty
values that pass the threshold are drawn from their exact distribution: how many
(binomial), which (uniform among the empty ones) and their counts (normal above the
threshold). The released set is then distributed exactly as thresholding a noisy
count of every step would release it.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from training.dp.mechanisms import Bin

__all__ = ["FALSE_VALUES_PER_COLUMN", "frequent_values", "threshold_of", "with_known_values"]

# expected number of values that hold no row but pass the threshold, per column
FALSE_VALUES_PER_COLUMN = 0.05
_WIDEST_EXACT = 2**62  # values in a range that numpy's binomial and integers still take


def threshold_of(sigma: float, cells: int, false_values: float = FALSE_VALUES_PER_COLUMN) -> float:
    """Noisy count an empty value passes with probability ``false_values / cells``."""
    if sigma <= 0:
        return 0.5
    return -sigma * NormalDist().inv_cdf(min(false_values / max(cells, 1), 0.5))


def frequent_values(
    units: np.ndarray,
    lo: float,
    hi: float,
    *,
    sigma: float,
    rng: np.random.Generator,
    false_values: float = FALSE_VALUES_PER_COLUMN,
) -> list[tuple[float, float]]:
    """(value, noisy count) of the values of ``units`` (whole numbers: steps) in
    [lo, hi] whose noisy count passes ``threshold_of(sigma, cells, false_values)``, by
    value; ``false_values`` is how many empty values are expected to pass."""
    first, last = int(np.ceil(lo)), int(np.floor(hi))
    if last < first:
        return []
    cells = last - first + 1
    inside = units[(units >= first) & (units <= last)]
    values, counts = np.unique(inside, return_counts=True)
    noisy = counts.astype(float)
    if sigma > 0:
        noisy += rng.normal(0.0, sigma, len(values))
    threshold = threshold_of(sigma, cells, false_values)
    found = [(float(v), float(c)) for v, c in zip(values, noisy, strict=True) if c > threshold]
    if sigma > 0:
        p = min(false_values / cells, 0.5)
        found += _empty_values_passing(set(values.tolist()), first, cells, sigma, p, rng)
    return sorted(found)


def _empty_values_passing(
    held: set[int], first: int, cells: int, sigma: float, p: float, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """The empty values whose noise alone passes the threshold: each does so
    independently with probability p, so their number is binomial, their places
    uniform among the empty values, and their counts normal conditioned above it."""
    empty = cells - len(held)
    # a range learned under DP can, rarely, span more values than numpy's binomial and
    # integers take (int64; seen on a date column of dslabs' polls): there the binomial,
    # of p about FALSE_VALUES_PER_COLUMN / cells, is its Poisson limit (total variation
    # at most n p^2, below 1e-18), and a place is 128 random bits modulo the range (every
    # value reachable, bias below 2^-58 for ranges under 2^70)
    wide = cells >= _WIDEST_EXACT
    k = 0
    if empty > 0:
        k = int(rng.poisson(empty * p)) if wide else int(rng.binomial(empty, p))
    chosen: set[int] = set()
    while len(chosen) < k:
        place = int.from_bytes(rng.bytes(16), "little") % cells if wide else rng.integers(cells)
        v = first + int(place)
        if v not in held:
            chosen.add(v)
    normal = NormalDist()
    return [(float(v), -sigma * normal.inv_cdf(p * (1.0 - rng.random()))) for v in chosen]


def with_known_values(
    bins: list[Bin],
    shapes: list[list[tuple[float, float, float]]],
    mass: list[float],
    known: list[tuple[float, float]],
    *,
    point_share: float,
    max_points: int,
    integral: bool,
) -> tuple[list[Bin], list[list[tuple[float, float, float]]]]:
    """Bins and shapes that return the known values exactly (post-processing).

    A value holding more than ``point_share`` of the rows becomes a token of its own
    (the largest ``max_points`` of them), so the network and the calibration see it; a
    smaller one becomes a zero-width part of its bin's shape, weighted by its noisy
    count, the rest of the bin's ``mass`` left to the parts it had.
    """
    bins = _reaching(bins, [v for v, _ in known])
    lo, hi = bins[0].lo, bins[-1].hi
    inside = [(v, c) for v, c in known if lo <= v <= hi]
    total = sum(mass)
    big = sorted(inside, key=lambda vc: -vc[1])[:max_points]
    points = {v for v, c in big if c > point_share * total}
    existing = {b.lo for b in bins if b.is_point}
    for v in sorted(points - existing):
        bins, shapes, mass = _split_at(bins, shapes, mass, v, integral=integral)
    small = [(v, c) for v, c in inside if v not in points and v not in existing]
    return bins, _add_parts(bins, shapes, mass, small)


def _reaching(bins: list[Bin], values: list[float]) -> list[Bin]:
    """The end bins stretched to the known values beyond them. The quantile bins trim
    0.1% of the noisy mass at each end as if it were spread evenly over the end
    bucket; a spike at the very end lay past the trim (DoctorContacts' fmde: 5% of its
    rows at its maximum decoded just below it)."""
    if not values:
        return bins
    out = list(bins)
    least, most = min(values), max(values)
    if least < out[0].lo and not out[0].is_point:
        out[0] = Bin(least, out[0].hi)
    if most > out[-1].hi and not out[-1].is_point:
        out[-1] = Bin(out[-1].lo, most)
    return out


def _split_at(
    bins: list[Bin],
    shapes: list[list[tuple[float, float, float]]],
    mass: list[float],
    value: float,
    *,
    integral: bool,
) -> tuple[list[Bin], list[list[tuple[float, float, float]]], list[float]]:
    """``value`` a point token; the interval holding it split around it, its shape's
    parts cut at the value and shared by each side's weight."""
    out_bins: list[Bin] = []
    out_shapes: list[list[tuple[float, float, float]]] = []
    out_mass: list[float] = []
    for b, parts, m in zip(bins, shapes, mass, strict=True):
        last = b is bins[-1]
        if b.is_point or not (b.lo <= value < b.hi or (last and value == b.hi)):
            out_bins.append(b)
            out_shapes.append(parts)
            out_mass.append(m)
            continue
        # integer units: [lo, hi) holds lo .. hi - 1, the last bin its top as well
        sides = [Bin(b.lo, value)] if b.lo < value else []
        sides.append(Bin(value, value))
        after = value + 1 if integral else float(np.nextafter(value, np.inf))
        if after < b.hi or (last and after <= b.hi):
            sides.append(Bin(after, b.hi))
        for side in sides:
            out_bins.append(side)
            out_shapes.append(_cut_parts(parts, side))
            out_mass.append(0.0 if side.lo == value == side.hi else m * _share(side, b))
    return out_bins, out_shapes, out_mass


def _share(part: Bin, whole: Bin) -> float:
    width = whole.hi - whole.lo
    return (min(part.hi, whole.hi) - max(part.lo, whole.lo)) / width if width > 0 else 0.0


def _cut_parts(
    parts: list[tuple[float, float, float]], side: Bin
) -> list[tuple[float, float, float]]:
    if side.is_point:
        return []
    out = []
    for a, c, w in parts:
        lo, hi = max(a, side.lo), min(c, side.hi)
        if hi > lo and c > a:
            out.append((lo, hi, w * (hi - lo) / (c - a)))
    return out


def _add_parts(
    bins: list[Bin],
    shapes: list[list[tuple[float, float, float]]],
    mass: list[float],
    small: list[tuple[float, float]],
) -> list[list[tuple[float, float, float]]]:
    lows = np.array([b.lo for b in bins])
    out = [list(p) for p in shapes]
    for v, c in small:
        k = int(np.clip(np.searchsorted(lows, v, side="right") - 1, 0, len(bins) - 1))
        if bins[k].is_point:
            continue
        parts = out[k] or [(bins[k].lo, bins[k].hi, mass[k])]
        out[k] = [*_less_at(parts, v, c), (v, v, c)]
    return out


def _less_at(
    parts: list[tuple[float, float, float]], value: float, count: float
) -> list[tuple[float, float, float]]:
    """The parts with ``count`` rows taken from the one holding ``value``."""
    return [(a, c, max(w - count, 0.0) if (a <= value < c and a < c) else w) for a, c, w in parts]

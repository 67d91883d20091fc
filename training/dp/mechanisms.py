"""Gaussian mechanisms that learn encoder metadata (bounds, bins, domains) under DP.

Every function here releases noisy counts of disjoint buckets: one row adds 1 to
exactly one bucket of each histogram, so a histogram has L2 sensitivity 1 under
add/remove-one-row, and ``K`` histograms released together have sensitivity
``sqrt(K)``. The caller chooses ``sigma`` for that joint release and charges it to
the run's accountant (``training.privacy``). ``sigma=0`` gives the exact, non-private
answer through the same code, for ``epsilon=None`` runs.

Notes:
    Bucket edges are public (a fixed geometric grid, or derived from earlier *noisy*
    answers), so a release never depends on the data except through noisy counts.
    Category domains are unknown in advance, so they go through thresholded
    partition selection: a category is kept only if its noisy count exceeds
    ``partition_threshold(sigma, delta)``, which bounds by ``delta`` the chance that a
    single row makes its own category appear.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

__all__ = [
    "Bin",
    "OctaveGrid",
    "Range",
    "bounds_from_octaves",
    "fine_edges",
    "noisy_histogram",
    "partition_select",
    "partition_threshold",
    "public_range",
    "quantile_bins",
]

MIN_EXPONENT = -16
MAX_EXPONENT = 62
SUBDIVISIONS = 4
MAX_FINE_BUCKETS = 256
MAX_INTEGER_BUCKETS = 256


@dataclass(frozen=True)
class Bin:
    """A token of a numeric column: a point value, or the half-open interval [lo, hi)."""

    lo: float
    hi: float

    @property
    def is_point(self) -> bool:
        return self.lo == self.hi


class OctaveGrid:
    """A public, data-independent partition of the real line into signed octaves.

    Buckets, in order: negative octaves from -2^(MAX+1) up to -2^MIN, the exact zero,
    then positive octaves [2^k, 2^(k+1)). Magnitudes below 2^MIN share the smallest
    octave of their sign; above 2^MAX the largest.
    """

    exponents = np.arange(MIN_EXPONENT, MAX_EXPONENT + 1)
    n_octaves = len(exponents)
    size = 2 * n_octaves + 1
    zero_index = n_octaves

    @classmethod
    def index(cls, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        _, e = np.frexp(np.abs(x))
        k = np.clip(e - 1, MIN_EXPONENT, MAX_EXPONENT) - MIN_EXPONENT
        idx = np.where(x > 0, cls.zero_index + 1 + k, cls.zero_index - 1 - k)
        return np.where(x == 0, cls.zero_index, idx).astype(np.int64)

    @classmethod
    def edges(cls, index: int) -> tuple[float, float]:
        """[lo, hi) of a bucket; the zero bucket is the point (0, 0)."""
        if index == cls.zero_index:
            return 0.0, 0.0
        k = abs(index - cls.zero_index) - 1 + MIN_EXPONENT
        lo, hi = 2.0**k, 2.0 ** (k + 1)
        return (lo, hi) if index > cls.zero_index else (-hi, -lo)


def noisy_histogram(
    indices: np.ndarray, n_buckets: int, *, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Counts of ``indices`` in ``n_buckets`` buckets plus N(0, sigma^2) each."""
    counts = np.bincount(indices, minlength=n_buckets)[:n_buckets].astype(float)
    if sigma > 0:
        counts += rng.normal(0.0, sigma, size=n_buckets)
    return counts


def partition_threshold(sigma: float, delta: float) -> float:
    """Noisy-count threshold above which a row-unique category shows with prob <= delta."""
    if sigma == 0:
        return 0.5
    return 1.0 - sigma * NormalDist().inv_cdf(delta)


def partition_select(
    values: np.ndarray, *, sigma: float, delta: float, rng: np.random.Generator
) -> dict[object, float]:
    """Categories whose noisy count passes the threshold, with those noisy counts."""
    uniques, counts = np.unique(values, return_counts=True)
    noisy = counts.astype(float)
    if sigma > 0:
        noisy += rng.normal(0.0, sigma, size=len(noisy))
    keep = noisy > partition_threshold(sigma, delta)
    kept = zip(uniques[keep], noisy[keep], strict=True)
    return {u.item() if hasattr(u, "item") else u: float(c) for u, c in kept}


@dataclass(frozen=True)
class Range:
    """A numeric range learned from (or declared for) a column.

    ``small`` is the smallest magnitude worth resolving: values between 0 and
    ``small`` share one bucket, so an octave grid does not descend to 2^MIN.
    """

    lo: float
    hi: float
    small: float


def bounds_from_octaves(noisy: np.ndarray, *, threshold: float) -> Range:
    """Smallest range covering the octaves whose noisy counts exceed ``threshold``.

    Falls back to the single largest bucket when none passes, so a tiny epsilon gives
    a narrow (clipped) range rather than an error.
    """
    passing = np.flatnonzero(noisy > threshold)
    if passing.size == 0:
        passing = np.array([int(np.argmax(noisy))])
    lo = OctaveGrid.edges(int(passing[0]))[0]
    hi = OctaveGrid.edges(int(passing[-1]))[1]
    nonzero = passing[passing != OctaveGrid.zero_index]
    magnitudes = [min(abs(v) for v in OctaveGrid.edges(int(i))) for i in nonzero]
    small = min(magnitudes) if magnitudes else 1.0
    return Range(lo=lo, hi=hi, small=small)


def public_range(lo: float, hi: float) -> Range:
    """A declared range; resolve magnitudes down to 2^-10 of its largest end."""
    return Range(lo=lo, hi=hi, small=max(abs(lo), abs(hi)) * 2.0**-10)


def fine_edges(bounds: Range, *, integral: bool) -> np.ndarray:
    """Public bucket edges inside the bounds for the quantile histogram.

    Integers over a short range get one bucket per integer. Otherwise each octave from
    ``bounds.small`` up is cut into SUBDIVISIONS equal parts, so skewed data (incomes,
    prices) keeps a relative resolution while the bucket count (and so the noise
    summed into a quantile) stays small.
    """
    lo, hi, small = bounds.lo, bounds.hi, bounds.small
    if hi <= lo:  # only one value (say, exact zeros) was seen: one bucket above it
        return np.array([lo, lo + max(small, 1.0)])
    if integral and hi - lo <= MAX_INTEGER_BUCKETS:
        # one bucket [v, v + 1) per integer, the largest included: a last edge at hi
        # would fold hi into hi - 1 (CPS1988 lost its 18 years of education)
        return np.arange(np.floor(lo), np.floor(hi) + 2.0)
    if lo >= 0:
        edges = np.concatenate([[lo], _octave_edges(max(lo, small), hi)])
    elif hi <= 0:
        edges = -np.concatenate([[-hi], _octave_edges(max(-hi, small), -lo)])[::-1]
    else:
        neg = -_octave_edges(small, -lo)[::-1]
        edges = np.concatenate([neg, [0.0], _octave_edges(small, hi)])
    edges = np.unique(np.clip(edges, lo, hi))
    if len(edges) - 1 > MAX_FINE_BUCKETS:
        pick = np.linspace(0, len(edges) - 1, MAX_FINE_BUCKETS + 1).round().astype(int)
        edges = edges[np.unique(pick)]
    if integral:
        edges = np.unique(np.round(edges))
    return edges


def _octave_edges(lo: float, hi: float) -> np.ndarray:
    """Edges from lo to hi (0 < lo < hi), SUBDIVISIONS per octave."""
    if hi <= lo:
        return np.array([lo, hi])
    bottom = int(np.floor(np.log2(lo)))
    top = int(np.ceil(np.log2(hi)))
    parts = [np.linspace(2.0**k, 2.0 ** (k + 1), SUBDIVISIONS + 1)[:-1] for k in range(bottom, top)]
    edges = np.concatenate([*parts, [2.0**top]])
    return edges[(edges >= lo) & (edges <= hi)]


def quantile_bins(
    edges: np.ndarray,
    noisy_counts: np.ndarray,
    *,
    n_bins: int,
    integral: bool,
    point_count: float = 0.0,
    point_value: float | None = None,
    noise_floor: float = 0.0,
) -> list[Bin]:
    """Token bins from a noisy histogram over ``edges``: DP quantiles, or integer points.

    Args:
        edges: public bucket edges, len(noisy_counts) + 1 of them.
        noisy_counts: the DP counts of each bucket.
        n_bins: how many quantile bins to aim for.
        integral: the column holds integers (bins are snapped to integers).
        point_count: noisy count of rows equal to ``point_value`` (e.g. exact zeros),
            released apart from ``noisy_counts``. Above 1/(2 n_bins) of the mass that
            value becomes a token of its own; otherwise its count joins its bucket.
        point_value: the value of that point mass.
        noise_floor: noisy counts below it are taken as empty buckets, so the noise
            of many empty buckets does not add up to fake mass in the quantiles.
    """
    counts = np.where(noisy_counts > noise_floor, noisy_counts, 0.0)
    point_count = point_count if point_count > noise_floor else 0.0
    unit = integral and bool(np.all(np.diff(edges) == 1))  # one integer per bucket
    integer_points = unit and len(edges) - 1 <= 64
    total_with_point = counts.sum() + point_count
    is_point = (
        point_value is not None
        and not integer_points
        and point_count > total_with_point / (2 * n_bins)
    )
    if point_value is not None and not is_point:
        holder = np.searchsorted(edges, point_value, side="right") - 1
        counts[int(np.clip(holder, 0, len(counts) - 1))] += point_count
    if integer_points:
        return _integer_point_bins(edges, counts)
    total = counts.sum()
    if total <= 0:
        return [Bin(float(edges[0]), float(edges[-1]))]
    cdf = np.concatenate([[0.0], np.cumsum(counts) / total])
    qs = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    inner = np.interp(qs, cdf, edges)
    lo, hi = _trimmed_range(edges, cdf)
    if integral:  # round the range outward, or its ends fall off with the rounding
        top = edges[-1] - 1 if unit else edges[-1]  # the largest integer the edges hold
        lo, hi = float(np.floor(lo)), float(min(np.ceil(hi), top))
        inner = np.round(inner)
    cuts = np.unique(np.concatenate([[lo], inner, [hi]]))
    cuts = cuts[(cuts >= lo) & (cuts <= hi)]
    bins = [Bin(float(a), float(b)) for a, b in itertools.pairwise(cuts)] or [Bin(lo, hi)]
    if is_point and point_value is not None:
        bins = _with_point(bins, float(point_value))
    return bins


def _integer_point_bins(edges: np.ndarray, counts: np.ndarray) -> list[Bin]:
    """One point token per integer, trimming empty-looking integers at both ends."""
    values = edges[:-1]
    threshold = 0.002 * counts.sum()
    keep = np.flatnonzero(counts > threshold)
    if keep.size == 0:
        keep = np.array([int(np.argmax(counts))])
    return [Bin(float(v), float(v)) for v in values[keep[0] : keep[-1] + 1]]


def _trimmed_range(edges: np.ndarray, cdf: np.ndarray) -> tuple[float, float]:
    """Range holding all but 0.1% of the noisy mass at each end."""
    lo = float(np.interp(0.001, cdf, edges))
    hi = float(np.interp(0.999, cdf, edges))
    if hi <= lo:
        lo, hi = float(edges[0]), float(edges[-1])
    return lo, hi


def _with_point(bins: list[Bin], value: float) -> list[Bin]:
    """Split the interval holding ``value`` so that ``value`` is a token of its own."""
    out: list[Bin] = []
    for b in bins:
        if b.lo <= value < b.hi or (value == b.hi and b is bins[-1]):
            if b.lo < value:
                out.append(Bin(b.lo, value))
            out.append(Bin(value, value))
            if value < b.hi:
                out.append(Bin(float(np.nextafter(value, np.inf)), b.hi))
        else:
            out.append(b)
    if not any(b.is_point and b.lo == value for b in out):
        out.append(Bin(value, value))
        out.sort(key=lambda b: (b.lo, b.hi))
    return out

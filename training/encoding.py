"""Column encoders: each column of a table becomes one integer token per row.

Token 0 of every column means "missing". Categorical columns add an "other" token (1)
for values outside the learned domain (rare categories that DP partition selection
dropped); a text column whose dropped categories hold a share of rows the noise
cannot explain samples it and decodes it as its ``other`` label, "(other)", so those
rows keep the rest of their values instead of turning into a majority category or a
missing one. Numeric columns map to
bins (points or half-open intervals) and are decoded by drawing a part of the bin by
the weight the released fine histogram gave it, then a value uniformly inside it.
Encoders are plain pydantic data, so an artifact stores them as JSON.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from training.errors import ConditionError
from training.schema import RESOLUTION_SECONDS, ColumnKind, Scalar

__all__ = ["CategoricalEncoder", "ColumnEncoder", "NumericEncoder", "TableEncoder", "as_float"]

# a datetime encoder's step (seconds) named as a where= error says it: "holds values in hours"
_DATE_UNITS = {float(seconds): f"{name}s" for name, seconds in RESOLUTION_SECONDS.items()}

MISSING = 0
OTHER = 1
NS_PER_SECOND = 1_000_000_000


class CategoricalEncoder(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["categorical"] = "categorical"
    name: str
    dtype: str
    categories: list[Scalar]
    nullable: bool = True
    other: str | None = None  # what the other token decodes to; None: never sampled

    @property
    def vocab_size(self) -> int:
        return 2 + len(self.categories)

    def never_sampled(self) -> list[int]:
        banned = [] if self.nullable else [MISSING]
        return banned if self.other is not None else [*banned, OTHER]

    def domain(self) -> dict[str, Any]:
        """What a sample of this column can hold (public or DP-released values only):
        the values a consumer's where= may name."""
        return {"categories": list(self.categories), "other": self.other,
                "nullable": self.nullable}  # fmt: skip

    def encode(self, values: pd.Series) -> np.ndarray:
        index = pd.Index(self.categories, dtype=object)
        codes = index.get_indexer(values.astype(object).where(values.notna(), None))
        tokens = np.where(codes >= 0, codes + 2, OTHER)
        return np.where(values.isna().to_numpy(), MISSING, tokens).astype(np.int64)

    def decode(self, tokens: np.ndarray, rng: np.random.Generator) -> pd.Series:
        lookup = np.array([None, self.other, *self.categories], dtype=object)
        values = lookup[tokens]
        return _restore_dtype(pd.Series(values, dtype=object), self.dtype)

    def token_of(self, value: Scalar | None) -> int:
        if value is None:
            return MISSING
        if self.other is not None and value == self.other:
            return OTHER
        for i, cat in enumerate(self.categories):
            if cat == value or str(cat) == str(value):
                return i + 2
        raise ConditionError(
            f"column={self.name!r}: value={value!r} is not in its domain "
            f"{[*self.categories[:20], *([self.other] if self.other is not None else [])]}"
        )

    def exact_value(self, value: Scalar | None) -> Scalar | None:
        token = self.token_of(value)
        if token == OTHER:
            return self.other
        return None if token == MISSING else self.categories[token - 2]


class NumericEncoder(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["numeric"] = "numeric"
    name: str
    dtype: str
    kind: ColumnKind
    bins: list[tuple[float, float]]
    # per bin, (lo, hi, weight) parts from the DP fine histogram; [] decodes uniformly
    shapes: list[list[tuple[float, float, float]]] = Field(default_factory=list)
    # values are whole multiples of step (0.01 for two decimals, a day of seconds for
    # dates): bins then count steps, as an integer column's count ones
    step: float | None = Field(default=None, gt=0)
    nullable: bool = True

    @property
    def vocab_size(self) -> int:
        return 1 + len(self.bins)

    def never_sampled(self) -> list[int]:
        return [] if self.nullable else [MISSING]

    @property
    def _lows(self) -> np.ndarray:
        return np.array([lo for lo, _ in self.bins])

    def domain(self) -> dict[str, Any]:
        """The range samples fall in (dates as ISO 8601), their step, and whether they
        can be missing: DP-released or declared public, like the bins."""
        lo, hi = self.value_range
        low: Any = lo
        high: Any = hi
        if self.kind == ColumnKind.DATETIME:
            low, high = (pd.Timestamp(v, unit="s").isoformat() for v in (lo, hi))
        return {"range": [low, high], "step": self.step, "nullable": self.nullable}

    @property
    def value_range(self) -> tuple[float, float]:
        """The lowest and highest value the bins hold, in the column's own units."""
        step = self.step or 1.0
        return self.bins[0][0] * step, self.bins[-1][1] * step

    def units(self, values: pd.Series) -> np.ndarray:
        """Values in the units the bins count: steps when a step is set."""
        x = as_float(values, self.kind)
        return x if self.step is None else np.round(x / self.step)

    def encode(self, values: pd.Series) -> np.ndarray:
        x = self.units(values)
        missing = np.isnan(x)
        idx = np.searchsorted(self._lows, np.where(missing, 0.0, x), side="right") - 1
        idx = np.clip(idx, 0, len(self.bins) - 1)
        return np.where(missing, MISSING, idx + 1).astype(np.int64)

    def decode(self, tokens: np.ndarray, rng: np.random.Generator) -> pd.Series:
        bins = np.array(self.bins, dtype=float).reshape(-1, 2)
        missing = tokens == MISSING
        idx = np.clip(tokens - 1, 0, len(bins) - 1)
        lo, hi = bins[idx, 0], bins[idx, 1]
        if self.shapes:
            lo, hi = self._shaped(idx, lo, hi, rng)
        if self.kind == ColumnKind.INTEGER or self.step is not None:
            values = self._draw_integers(lo, hi, idx, rng)
        else:
            values = lo + (hi - lo) * rng.random(len(tokens))
        if self.step is not None:  # whole steps; rounded again so 163 * 0.01 prints 1.63
            places = max(0, -int(np.floor(np.log10(self.step))))
            values = np.round(values * self.step, places) if self.step < 1 else values * self.step
        values = np.where(missing, np.nan, values)
        return self._to_series(values)

    def _shaped(
        self, idx: np.ndarray, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Narrow each row's bin to one of its parts, drawn by weight."""
        lo, hi = lo.copy(), hi.copy()
        for b, parts in enumerate(self.shapes):
            rows = np.flatnonzero(idx == b) if parts else np.empty(0, dtype=np.int64)
            if rows.size == 0:
                continue
            table = np.asarray(parts, dtype=float)
            cdf = np.cumsum(table[:, 2]) / table[:, 2].sum()
            pick = np.minimum(
                np.searchsorted(cdf, rng.random(rows.size), side="right"), len(cdf) - 1
            )
            lo[rows], hi[rows] = table[pick, 0], table[pick, 1]
        return lo, hi

    def _draw_integers(
        self, lo: np.ndarray, hi: np.ndarray, idx: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        first = np.ceil(lo)
        # the last bin holds its upper end (a part of it only if the part ends there)
        closed = (idx == len(self.bins) - 1) & (hi == self.bins[-1][1])
        last = np.where(closed | (lo == hi), np.floor(hi), np.ceil(hi) - 1)
        last = np.maximum(last, first)
        return first + np.floor(rng.random(len(lo)) * (last - first + 1))

    def _to_series(self, values: np.ndarray) -> pd.Series:
        if self.kind == ColumnKind.DATETIME:
            stamps = pd.Series(pd.to_datetime(values * NS_PER_SECOND, unit="ns"))
            dtype = pd.api.types.pandas_dtype(self.dtype)
            if isinstance(dtype, pd.DatetimeTZDtype):  # wall-clock seconds in the zone
                # the repeated hour when clocks go back reads as standard time; the hour
                # skipped when they go forward moves to its end
                standard = np.zeros(len(stamps), dtype=bool)
                return stamps.dt.tz_localize(
                    dtype.tz, ambiguous=standard, nonexistent="shift_forward"
                ).astype(dtype)
            return stamps.astype(dtype)
        return _restore_dtype(pd.Series(values), self.dtype)

    def token_of(self, value: Scalar | None) -> int:
        if value is None:
            return MISSING
        return int(self.encode(pd.Series([value]))[0])

    def exact_value(self, value: Scalar | None) -> Scalar | None:
        if value is None:
            return None
        lo, hi = self.bins[0][0], self.bins[-1][1]
        x = float(self.units(pd.Series([value]))[0])
        if np.isnan(x) or not lo <= x <= hi:
            step = self.step or 1.0
            raise ConditionError(
                f"column={self.name!r}: value={value!r} is outside the range "
                f"[{lo * step:g}, {hi * step:g}]"
            )
        raw = float(as_float(pd.Series([value]), self.kind)[0])
        if self.kind == ColumnKind.INTEGER and not raw.is_integer():
            raise ConditionError(f"column={self.name!r} holds whole numbers: {value!r} is not one")
        if self.step is not None and abs(raw / self.step - x) > 1e-6:
            unit = (
                _DATE_UNITS.get(self.step, f"steps of {self.step:g} s")
                if self.kind == ColumnKind.DATETIME
                else f"steps of {self.step:g}"
            )
            raise ConditionError(f"column={self.name!r} holds values in {unit}: not {value!r}")
        return value


def as_float(values: pd.Series, kind: ColumnKind) -> np.ndarray:
    """Numeric values as floats (datetimes as epoch seconds); NaN where missing.

    A zoned datetime counts its wall-clock time in its zone, not the UTC instant: a
    day or an hour step must be the zone's, or a date at local midnight in Chicago,
    rounded to whole UTC days, decoded as 18:00 the day before."""
    if kind == ColumnKind.DATETIME:
        stamps = pd.to_datetime(values, errors="coerce", format="mixed")
        if isinstance(stamps.dtype, pd.DatetimeTZDtype):
            stamps = stamps.dt.tz_localize(None)
        out = stamps.astype("int64").to_numpy(dtype=float) / NS_PER_SECOND
        return np.where(stamps.isna().to_numpy(), np.nan, out)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


ColumnEncoder = Annotated[CategoricalEncoder | NumericEncoder, Field(discriminator="type")]


class TableEncoder(BaseModel):
    """The encoders of all modelled columns, in model order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    columns: list[ColumnEncoder]

    def domains(self) -> dict[str, dict[str, Any]]:
        """Each modelled column's released domain, by name."""
        return {c.name: c.domain() for c in self.columns}

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def vocab_sizes(self) -> list[int]:
        return [c.vocab_size for c in self.columns]

    def encode(self, df: pd.DataFrame) -> np.ndarray:
        """(rows, columns) int64 tokens."""
        return np.stack([c.encode(df[c.name]) for c in self.columns], axis=1)

    def decode(self, tokens: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        data = {c.name: c.decode(tokens[:, j], rng) for j, c in enumerate(self.columns)}
        return pd.DataFrame(data)


def _restore_dtype(values: pd.Series, dtype: str) -> pd.Series:
    if dtype == "object" or dtype.startswith("string"):
        return values.astype(object)
    if dtype == "bool":
        return values.astype(bool) if values.notna().all() else values.astype("boolean")
    if dtype.startswith(("int", "uint")) and values.isna().any():
        return values.astype(dtype.capitalize() if dtype.startswith("int") else "UInt64")
    return values.astype(dtype)

"""Column encoders: each column of a table becomes one integer token per row.

Token 0 of every column means "missing". Categorical columns add an "other" token (1)
for values outside the learned domain; it is never sampled. Numeric columns map to
bins (points or half-open intervals) and are decoded by drawing uniformly inside the
bin. Encoders are plain pydantic data, so an artifact stores them as JSON.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from training.errors import ConditionError
from training.schema import ColumnKind, Scalar

__all__ = ["CategoricalEncoder", "ColumnEncoder", "NumericEncoder", "TableEncoder", "as_float"]

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

    @property
    def vocab_size(self) -> int:
        return 2 + len(self.categories)

    def never_sampled(self) -> list[int]:
        return [OTHER] if self.nullable else [MISSING, OTHER]

    def encode(self, values: pd.Series) -> np.ndarray:
        index = pd.Index(self.categories, dtype=object)
        codes = index.get_indexer(values.astype(object).where(values.notna(), None))
        tokens = np.where(codes >= 0, codes + 2, OTHER)
        return np.where(values.isna().to_numpy(), MISSING, tokens).astype(np.int64)

    def decode(self, tokens: np.ndarray, rng: np.random.Generator) -> pd.Series:
        lookup = np.array([None, None, *self.categories], dtype=object)
        values = lookup[tokens]
        return _restore_dtype(pd.Series(values, dtype=object), self.dtype)

    def token_of(self, value: Scalar | None) -> int:
        if value is None:
            return MISSING
        for i, cat in enumerate(self.categories):
            if cat == value or str(cat) == str(value):
                return i + 2
        raise ConditionError(
            f"column={self.name!r}: value={value!r} is not in its domain {self.categories[:20]}"
        )

    def exact_value(self, value: Scalar | None) -> Scalar | None:
        token = self.token_of(value)
        return None if token == MISSING else self.categories[token - 2]


class NumericEncoder(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["numeric"] = "numeric"
    name: str
    dtype: str
    kind: ColumnKind
    bins: list[tuple[float, float]]
    nullable: bool = True

    @property
    def vocab_size(self) -> int:
        return 1 + len(self.bins)

    def never_sampled(self) -> list[int]:
        return [] if self.nullable else [MISSING]

    @property
    def _lows(self) -> np.ndarray:
        return np.array([lo for lo, _ in self.bins])

    def encode(self, values: pd.Series) -> np.ndarray:
        x = as_float(values, self.kind)
        missing = np.isnan(x)
        idx = np.searchsorted(self._lows, np.where(missing, 0.0, x), side="right") - 1
        idx = np.clip(idx, 0, len(self.bins) - 1)
        return np.where(missing, MISSING, idx + 1).astype(np.int64)

    def decode(self, tokens: np.ndarray, rng: np.random.Generator) -> pd.Series:
        bins = np.array(self.bins, dtype=float).reshape(-1, 2)
        missing = tokens == MISSING
        idx = np.clip(tokens - 1, 0, len(bins) - 1)
        lo, hi = bins[idx, 0], bins[idx, 1]
        if self.kind == ColumnKind.INTEGER:
            values = self._draw_integers(lo, hi, idx, rng)
        else:
            values = lo + (hi - lo) * rng.random(len(tokens))
        values = np.where(missing, np.nan, values)
        return self._to_series(values)

    def _draw_integers(
        self, lo: np.ndarray, hi: np.ndarray, idx: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        first = np.ceil(lo)
        last_bin = idx == len(self.bins) - 1
        last = np.where(last_bin | (lo == hi), np.floor(hi), np.ceil(hi) - 1)
        last = np.maximum(last, first)
        return first + np.floor(rng.random(len(lo)) * (last - first + 1))

    def _to_series(self, values: np.ndarray) -> pd.Series:
        if self.kind == ColumnKind.DATETIME:
            stamps = pd.to_datetime(values * NS_PER_SECOND, unit="ns")
            return pd.Series(stamps).astype(self.dtype)
        return _restore_dtype(pd.Series(values), self.dtype)

    def token_of(self, value: Scalar | None) -> int:
        if value is None:
            return MISSING
        return int(self.encode(pd.Series([value]))[0])

    def exact_value(self, value: Scalar | None) -> Scalar | None:
        if value is None:
            return None
        lo, hi = self.bins[0][0], self.bins[-1][1]
        x = float(as_float(pd.Series([value]), self.kind)[0])
        if np.isnan(x) or not lo <= x <= hi:
            raise ConditionError(
                f"column={self.name!r}: value={value!r} is outside the range [{lo}, {hi}]"
            )
        return value


def as_float(values: pd.Series, kind: ColumnKind) -> np.ndarray:
    """Numeric values as floats (datetimes as epoch seconds); NaN where missing."""
    if kind == ColumnKind.DATETIME:
        stamps = pd.to_datetime(values, errors="coerce", format="mixed")
        out = stamps.astype("int64").to_numpy(dtype=float) / NS_PER_SECOND
        return np.where(stamps.isna().to_numpy(), np.nan, out)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


ColumnEncoder = Annotated[CategoricalEncoder | NumericEncoder, Field(discriminator="type")]


class TableEncoder(BaseModel):
    """The encoders of all modelled columns, in model order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    columns: list[ColumnEncoder]

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

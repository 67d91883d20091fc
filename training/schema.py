"""Table schema: column kinds and the metadata an owner declares public.

The inferred schema holds *types* only (the owner confirms them, and they are treated
as public metadata). Bounds and category domains never come from inference: they are
either declared public by the owner here, or learned later under DP by
``training.preprocessing``.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from training.constraints import Constraint, check_declared
from training.errors import (
    DuplicateColumnError,
    EmptyTableError,
    SchemaError,
    SchemaMismatchError,
    TooFewRowsError,
    UnsupportedDtypeError,
)

__all__ = ["INFERENCE_NOTICE", "ColumnKind", "ColumnSchema", "TableSchema", "infer_schema"]

# Said wherever an owner confirms an inferred schema: inference reads the rows, and what
# it returns is outside the privacy accounting until the owner declares it public.
INFERENCE_NOTICE = (
    "This schema was inferred from the uploaded rows: each column's kind and each "
    "exclusion reason (with its exact counts, such as distinct values) depend on the data "
    "and are not covered by epsilon. They are shown to the dataset's owners and auditors "
    "only. What reaches a model is the confirmed kinds and decimals; bounds and categories "
    "are learned under DP unless you declare them public here."
)

# A numeric column with at most this many distinct values is categorical (codes, scales).
LOW_CARDINALITY = 10
# A string column with more distinct values than this is free text, not a category.
MAX_CATEGORIES = 200
# Average string length from which a high-cardinality column is called free text.
TEXT_MIN_LENGTH = 20
DEFAULT_MIN_ROWS = 50
# A numeric column's precision is inferred up to this many decimals (beyond: None, a
# continuous column). Cents, grams and centimetres gain from counting in steps (yrbss
# heights: round trip TVD 0.233 -> 0.023); logs printed to six places (Ecdat
# DoctorContacts) would count in millions of steps and gain nothing.
MAX_DECIMALS = 3
SECONDS_PER_DAY = 86_400
# A datetime column's resolution and its step in seconds, coarsest first: an hourly
# reading decodes to whole hours, never to nanosecond instants no row was written at
Resolution = Literal["day", "hour", "minute", "second"]
RESOLUTION_SECONDS: dict[Resolution, int] = {
    "day": SECONDS_PER_DAY,
    "hour": 3_600,
    "minute": 60,
    "second": 1,
}
# ISO dates (2024-03-01, 2024-03-01T10:00) or slashed ones (03/01/2024, 1/3/24)
DATE_PATTERN = r"^\s*(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4})([ T]\d{1,2}:\d{2}.*)?\s*$"

Scalar = str | int | float | bool


class ColumnKind(StrEnum):
    CATEGORICAL = "categorical"
    NUMERICAL = "numerical"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    DATETIME = "datetime"


class ColumnSchema(BaseModel):
    """One column: its kind, its pandas dtype, and any public metadata."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: ColumnKind
    dtype: str
    excluded: str | None = None
    public_bounds: tuple[float, float] | None = None
    public_categories: list[Scalar] | None = None
    # a numeric column's precision: values are decoded rounded to it (heights of
    # 1.63 m, not 1.6287; a value at the edge of a bin stays on its side)
    decimals: int | None = Field(default=None, ge=0, le=MAX_DECIMALS)

    # a datetime column's resolution: "day" decodes dates, never random times of day;
    # "hour", "minute", "second" decode whole hours, minutes, seconds
    resolution: Resolution | None = None
    # whether samples may be missing, declared public by the owner; None: learned from
    # the rows under DP (or, with public categories, assumed when the dtype can hold it)
    nullable: bool | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSchema:
        if self.decimals is not None and self.kind != ColumnKind.NUMERICAL:
            raise ValueError(f"column={self.name!r}: kind={self.kind} takes no decimals")
        if self.resolution is not None and self.kind != ColumnKind.DATETIME:
            raise ValueError(f"column={self.name!r}: kind={self.kind} takes no resolution")
        if self.public_bounds is not None:
            lo, hi = self.public_bounds
            if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
                raise ValueError(
                    f"column={self.name!r}: public_bounds=({lo}, {hi}) must be finite with lo < hi"
                )
            if self.kind not in (ColumnKind.NUMERICAL, ColumnKind.INTEGER, ColumnKind.DATETIME):
                raise ValueError(f"column={self.name!r}: kind={self.kind} takes no bounds")
        if self.public_categories is not None:
            if len(self.public_categories) == 0:
                raise ValueError(f"column={self.name!r}: public_categories must not be empty")
            if len(set(map(repr, self.public_categories))) != len(self.public_categories):
                raise ValueError(f"column={self.name!r}: public_categories has duplicates")
            if self.kind not in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
                raise ValueError(f"column={self.name!r}: kind={self.kind} takes no categories")
        return self

    @property
    def step(self) -> float | None:
        """The distance between the column's values, in its encoded units (seconds for
        datetimes), when the schema declares one."""
        if self.decimals is not None:
            return 10.0**-self.decimals
        if self.resolution is not None:
            return float(RESOLUTION_SECONDS[self.resolution])
        return None

    @property
    def is_numeric(self) -> bool:
        return self.kind in (ColumnKind.NUMERICAL, ColumnKind.INTEGER, ColumnKind.DATETIME)


class TableSchema(BaseModel):
    """The columns of a table, in order, with what the owner declared public."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    columns: list[ColumnSchema] = Field(min_length=1)
    # rules every synthetic row keeps (order, equal, combinations): training.constraints
    constraints: list[Constraint] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> TableSchema:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate column names: {dupes}")
        if not self.modelled:
            raise ValueError("every column is excluded: nothing left to model")
        check_declared(self.constraints, {c.name: str(c.kind) for c in self.modelled})
        return self

    @property
    def modelled(self) -> list[ColumnSchema]:
        """Columns the generator learns (excluded ones are dropped)."""
        return [c for c in self.columns if c.excluded is None]

    def column(self, name: str) -> ColumnSchema:
        for col in self.columns:
            if col.name == name:
                return col
        raise SchemaError(f"column={name!r} is not in the schema")

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> TableSchema:
        return cls.model_validate(json.loads(text))

    def _replace(self, name: str, **changes: Any) -> TableSchema:
        self.column(name)
        cols = [
            ColumnSchema.model_validate({**c.model_dump(), **changes}) if c.name == name else c
            for c in self.columns
        ]
        return TableSchema(columns=cols, constraints=self.constraints)

    def with_constraints(self, constraints: list[Constraint]) -> TableSchema:
        """Declare the rules every synthetic row keeps (replacing any declared before)."""
        return TableSchema(columns=self.columns, constraints=list(constraints))

    def with_public_bounds(self, name: str, lo: float, hi: float) -> TableSchema:
        """Declare a numeric column's range public: no epsilon is spent on it."""
        return self._replace(name, public_bounds=(float(lo), float(hi)))

    def with_public_categories(self, name: str, categories: list[Scalar]) -> TableSchema:
        """Declare a column's category domain public: no epsilon is spent on it."""
        return self._replace(name, public_categories=list(categories))

    def with_kind(self, name: str, kind: ColumnKind) -> TableSchema:
        return self.with_column(name, {"kind": kind})

    def with_column(self, name: str, changes: dict[str, Any]) -> TableSchema:
        """The column with ``changes`` (fields of ColumnSchema) applied. A new kind
        clears what belonged to the old one (bounds, categories, decimals, resolution)
        and takes its dtype (``KIND_DTYPES``) unless those are given too."""
        current = self.column(name)
        kind = ColumnKind(changes.get("kind", current.kind))
        if kind != current.kind:
            cleared = {"public_bounds": None, "public_categories": None, "decimals": None,
                       "resolution": None, "dtype": _dtype_for(kind, current.dtype)}  # fmt: skip
            changes = {**cleared, **changes}
        return self._replace(name, **changes)

    def drop(self, name: str) -> TableSchema:
        return self._replace(name, excluded="dropped by the owner")

    def validate_frame(self, df: pd.DataFrame) -> None:
        """Raise ``SchemaMismatchError`` unless ``df`` has every modelled column, usable."""
        _check_frame(df, min_rows=1)
        missing = [c.name for c in self.modelled if c.name not in df.columns]
        if missing:
            raise SchemaMismatchError(f"columns missing from the data: {missing}")
        for col in self.modelled:
            _check_column_fits(col, df[col.name])


# the dtype a column declared of another kind decodes to
KIND_DTYPES = {
    ColumnKind.DATETIME: "datetime64[ns]",
    ColumnKind.NUMERICAL: "float64",
    ColumnKind.INTEGER: "float64",  # may hold missing values; decoded whole
    ColumnKind.BOOLEAN: "bool",
}


def _dtype_for(kind: ColumnKind, current: str) -> str:
    if kind == ColumnKind.CATEGORICAL:
        return "object" if current.startswith("datetime") else current
    return KIND_DTYPES[kind]


def infer_schema(df: pd.DataFrame, *, min_rows: int = DEFAULT_MIN_ROWS) -> TableSchema:
    """Infer column kinds; exclude ID-like and free-text columns with a stated reason."""
    _check_frame(df, min_rows=min_rows)
    columns = [_infer_column(str(name), df[name]) for name in df.columns]
    if all(c.excluded for c in columns):
        reasons = {c.name: c.excluded for c in columns}
        raise SchemaError(f"no column can be modelled: {reasons}")
    return TableSchema(columns=columns)


def _check_frame(df: pd.DataFrame, *, min_rows: int) -> None:
    if df.shape[1] == 0 or df.shape[0] == 0:
        raise EmptyTableError(f"the table is empty: rows={df.shape[0]}, columns={df.shape[1]}")
    names = [str(c) for c in df.columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DuplicateColumnError(f"duplicate column names: {dupes}")
    if df.shape[0] < min_rows:
        raise TooFewRowsError(f"rows={df.shape[0]}; at least min_rows={min_rows} are needed")


def _infer_column(name: str, values: pd.Series) -> ColumnSchema:
    dtype = str(values.dtype)
    present = values.dropna()
    dropped = _nothing_to_learn(present, n_rows=len(values))
    if dropped is not None:
        return ColumnSchema(name=name, kind=ColumnKind.CATEGORICAL, dtype=dtype, excluded=dropped)
    if pd.api.types.is_bool_dtype(values.dtype):
        return ColumnSchema(name=name, kind=ColumnKind.BOOLEAN, dtype=dtype)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return _datetime_column(name, present, dtype)
    if isinstance(values.dtype, pd.CategoricalDtype):
        return ColumnSchema(name=name, kind=ColumnKind.CATEGORICAL, dtype="object")
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_complex_dtype(
        values.dtype
    ):
        return _infer_numeric(name, present, dtype)
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        return _infer_object(name, present, dtype, n_rows=len(values))
    raise UnsupportedDtypeError(f"column={name!r} has dtype={dtype}, which has no encoder")


def _nothing_to_learn(present: pd.Series, *, n_rows: int) -> str | None:
    """Why a column carries nothing to learn (all null, or one value in every row), or
    None. Such a column is excluded with that reason, never an error: real exports have
    them (a form field never filled, a treatment flag of a one-arm study)."""
    if present.empty:
        return f"no value: all {n_rows} rows are null"
    if len(present) == n_rows and present.astype(str).nunique() == 1:
        return "constant: every row holds the same value"
    return None


def _infer_numeric(name: str, present: pd.Series, dtype: str) -> ColumnSchema:
    n_unique = present.nunique()
    integral = pd.api.types.is_integer_dtype(present.dtype) or bool(
        np.all(np.mod(present.to_numpy(dtype=float), 1.0) == 0)
    )
    if integral and n_unique == len(present) and len(present) > LOW_CARDINALITY:
        return ColumnSchema(
            name=name,
            kind=ColumnKind.INTEGER,
            dtype=dtype,
            excluded="ID-like: every value is a distinct integer",
        )
    if n_unique <= LOW_CARDINALITY:
        return ColumnSchema(name=name, kind=ColumnKind.CATEGORICAL, dtype=dtype)
    if integral:
        return ColumnSchema(name=name, kind=ColumnKind.INTEGER, dtype=dtype)
    decimals = _decimals(present.to_numpy(dtype=float))
    return ColumnSchema(name=name, kind=ColumnKind.NUMERICAL, dtype=dtype, decimals=decimals)


def _decimals(values: np.ndarray[Any, np.dtype[np.float64]]) -> int | None:
    """The fewest decimals that hold every value, up to MAX_DECIMALS (else None).

    Read like the integral test above it, as part of the schema the owner reviews:
    a precision, not a value."""
    for places in range(1, MAX_DECIMALS + 1):
        scaled = values * 10.0**places
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-6 * np.maximum(1.0, np.abs(scaled))):
            return places
    return None


def _infer_object(name: str, present: pd.Series, dtype: str, *, n_rows: int) -> ColumnSchema:
    kinds = {type(v) for v in present.head(1000)}
    if not kinds <= {str, bool, int, float, np.bool_}:
        found = sorted(k.__name__ for k in kinds)
        raise UnsupportedDtypeError(f"column={name!r} holds values of types {found}")
    if kinds <= {bool, np.bool_}:
        return ColumnSchema(name=name, kind=ColumnKind.BOOLEAN, dtype="bool")
    as_text = present.astype(str)
    n_unique = as_text.nunique()
    if _looks_like_dates(as_text):
        parsed = pd.to_datetime(as_text, errors="coerce", format="mixed")
        return _datetime_column(name, parsed.dropna(), "datetime64[ns]")
    if n_unique <= MAX_CATEGORIES:
        return ColumnSchema(name=name, kind=ColumnKind.CATEGORICAL, dtype=dtype)
    if n_unique == len(present) and len(present) == n_rows:
        reason = "ID-like: every value is distinct"
    elif as_text.str.len().mean() >= TEXT_MIN_LENGTH:
        reason = f"free text: {n_unique} distinct values, mean length >= {TEXT_MIN_LENGTH}"
    else:
        parsed = pd.to_datetime(as_text.head(1000), errors="coerce", format="mixed")
        if parsed.notna().mean() > 0.95:
            return ColumnSchema(name=name, kind=ColumnKind.DATETIME, dtype="datetime64[ns]")
        reason = f"high cardinality: {n_unique} distinct values > {MAX_CATEGORIES}"
    return ColumnSchema(name=name, kind=ColumnKind.CATEGORICAL, dtype=dtype, excluded=reason)


def _looks_like_dates(as_text: pd.Series) -> bool:
    """Written as dates (2024-03-01, 03/01/2024, with or without a time) in nearly
    every row: a date column whatever its number of distinct values, which a CSV
    of 200 days or fewer typed categorical before."""
    sample = as_text.head(1000)
    if sample.empty or not sample.str.match(DATE_PATTERN).mean() > 0.95:
        return False
    return bool(pd.to_datetime(sample, errors="coerce", format="mixed").notna().mean() > 0.95)


def _datetime_column(name: str, present: pd.Series, dtype: str) -> ColumnSchema:
    """A datetime column at the coarsest resolution every row is written at: day when
    no row has a time of day, else whole hours, minutes or seconds; none below that."""
    stamps = pd.to_datetime(present, errors="coerce")
    stamps = stamps[stamps.notna()]
    return ColumnSchema(
        name=name, kind=ColumnKind.DATETIME, dtype=dtype, resolution=_resolution(stamps)
    )


def _resolution(stamps: pd.Series) -> Resolution | None:
    """Read off the rows as the integer test and decimals are: a precision, part of the
    schema the owner reviews. A zoned column is judged in its own zone (a date at
    local midnight is a date), and no resolution when there are no rows to judge."""
    if stamps.empty:
        return None
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_localize(None)
    nanoseconds = stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    for resolution, seconds in RESOLUTION_SECONDS.items():
        if not np.any(nanoseconds % (seconds * 1_000_000_000)):
            return resolution
    return None


def _check_column_fits(col: ColumnSchema, values: pd.Series) -> None:
    if col.kind in (ColumnKind.NUMERICAL, ColumnKind.INTEGER):
        converted = pd.to_numeric(values, errors="coerce")
        bad = int((converted.isna() & values.notna()).sum())
        if bad:
            raise SchemaMismatchError(
                f"column={col.name!r} is {col.kind} but {bad} values are not numbers"
            )
    elif col.kind == ColumnKind.DATETIME and not pd.api.types.is_datetime64_any_dtype(values.dtype):
        converted = pd.to_datetime(values, errors="coerce", format="mixed")
        bad = int((converted.isna() & values.notna()).sum())
        if bad:
            raise SchemaMismatchError(
                f"column={col.name!r} is datetime but {bad} values are not dates"
            )

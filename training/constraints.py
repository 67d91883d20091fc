"""Rules between columns that every synthetic row keeps, declared by the owner.

A generator learns how columns go together only as well as its epsilon allows: a
release date drawn before its arrest date, two columns equal in every real row drawn
unequal, a code beside another code's label. What the owner knows to hold in every
row is declared on the schema and kept exactly at sampling time:

- ``order``: ``columns[0] <= columns[1]`` wherever both are present (numbers or dates);
- ``equal``: ``columns[1]`` is a copy of ``columns[0]`` (the second is not drawn);
- ``combinations``: the listed columns take only the listed value tuples.

``order`` and ``combinations`` are kept by rejection: rows that break them are drawn
again, so the output follows the model conditioned on the rule (what SDV's reject
sampling does). A declaration is public metadata, like a declared bound: no epsilon
pays for it, and it is never checked against the rows (that check would read them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MAX_COMBINATIONS",
    "MAX_CONSTRAINTS",
    "CombinationsConstraint",
    "Constraint",
    "EqualConstraint",
    "OrderConstraint",
    "apply_copies",
    "check_declared",
    "copied_columns",
    "rows_kept",
]

# bounds on what a declaration may cost at sampling time
MAX_CONSTRAINTS = 64
MAX_COMBINATIONS = 100_000

Value = str | int | float | bool | None


class OrderConstraint(BaseModel):
    """``columns[0] <= columns[1]`` in every row where both are present."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["order"] = "order"
    columns: tuple[str, str]


class EqualConstraint(BaseModel):
    """``columns[1]`` equals ``columns[0]`` in every row (missing where it is missing)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["equal"] = "equal"
    columns: tuple[str, str]


class CombinationsConstraint(BaseModel):
    """The columns take only these value tuples (a code and its label, a city and its
    state); ``null`` in a tuple stands for a missing value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["combinations"] = "combinations"
    columns: list[str] = Field(min_length=2, max_length=8)
    values: list[list[Value]] = Field(min_length=1, max_length=MAX_COMBINATIONS)


Constraint = Annotated[
    OrderConstraint | EqualConstraint | CombinationsConstraint, Field(discriminator="kind")
]


def check_declared(constraints: Sequence[Constraint], kinds: dict[str, str]) -> None:
    """Raise ValueError naming the first declaration that cannot hold on these columns.

    ``kinds``: each modelled column's kind ("numerical", "integer", "datetime", ...).
    """
    if len(constraints) > MAX_CONSTRAINTS:
        raise ValueError(f"{len(constraints)} constraints; at most {MAX_CONSTRAINTS}")
    copied: set[str] = set()
    for i, c in enumerate(constraints):
        where = f"constraints[{i}] ({c.kind} {list(c.columns)})"
        unknown = [name for name in c.columns if name not in kinds]
        if unknown:
            raise ValueError(f"{where}: columns {unknown} are not modelled columns")
        if len(set(c.columns)) != len(c.columns):
            raise ValueError(f"{where}: a column is named twice")
        if isinstance(c, OrderConstraint):
            found = [kinds[name] for name in c.columns]
            if not all(k in ("numerical", "integer", "datetime") for k in found):
                raise ValueError(f"{where}: order needs numbers or dates, got kinds {found}")
            if ("datetime" in found) and found[0] != found[1]:
                raise ValueError(f"{where}: a date can only be ordered with a date")
        elif isinstance(c, EqualConstraint):
            first, second = c.columns
            if kinds[first] != kinds[second]:
                raise ValueError(
                    f"{where}: kinds differ ({kinds[first]}, {kinds[second]}): no copy"
                )
            if second in copied:
                raise ValueError(f"{where}: column {second!r} is already a copy")
            copied.add(second)
        else:
            wrong = [t for t in c.values if len(t) != len(c.columns)]
            if wrong:
                raise ValueError(
                    f"{where}: each tuple needs {len(c.columns)} values; got {wrong[0]!r}"
                )
    copied_columns(constraints)  # a cycle of copies is refused there


def copied_columns(constraints: Sequence[Constraint]) -> dict[str, str]:
    """Each copied column and the column it copies, followed to the source: a copy of
    a copy is fine (a -> b -> c); a cycle (a -> b -> a) names no source (ValueError)."""
    sources = {c.columns[1]: c.columns[0] for c in constraints if isinstance(c, EqualConstraint)}
    resolved = {}
    for name in sources:
        seen, source = {name}, sources[name]
        while source in sources:
            if source in seen:
                raise ValueError(f"equal constraints form a cycle through {name!r}")
            seen.add(source)
            source = sources[source]
        resolved[name] = source
    return resolved


def apply_copies(constraints: Sequence[Constraint], frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every ``equal`` constraint's second column copied from its first."""
    copies = copied_columns(constraints)
    if not copies:
        return frame
    return frame.assign(**{name: frame[source].to_numpy() for name, source in copies.items()})


def rows_kept(constraints: Sequence[Constraint], frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    """Which rows of ``frame`` keep every ``order`` and ``combinations`` constraint."""
    keep = np.ones(len(frame), dtype=bool)
    for c in constraints:
        if isinstance(c, OrderConstraint):
            first, second = (frame[name] for name in c.columns)
            both = first.notna() & second.notna()
            keep &= ~(both & (first > second)).to_numpy(dtype=bool)
        elif isinstance(c, CombinationsConstraint):
            keep &= _in_combinations(c, frame)
    return keep


def _in_combinations(c: CombinationsConstraint, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    allowed = {tuple(_key(v) for v in values) for values in c.values}
    cells = zip(*(frame[name].tolist() for name in c.columns), strict=True)
    return np.fromiter(
        (tuple(_key(v) for v in row) in allowed for row in cells), dtype=bool, count=len(frame)
    )


def _key(value: Any) -> Any:
    """A cell as a set key: missing is None, 2 and 2.0 agree, strings stay strings."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    return str(value)

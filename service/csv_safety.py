"""Cells a spreadsheet would run as formulas, made inert: every CSV the service writes
holds strings a user chose (category values, column names, paths, reasons)."""

from __future__ import annotations

__all__ = ["FORMULA_START", "inert", "risky"]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def risky(value: object) -> bool:
    """A spreadsheet runs a cell as a formula when it starts, after any blanks, with one
    of these; a cell starting with a tab or carriage return is refused outright."""
    return isinstance(value, str) and (
        value.startswith(FORMULA_START) or value.lstrip().startswith(FORMULA_START)
    )


def inert(value: str) -> str:
    """The cell with a leading quote when it is risky (the quote shows; nothing runs)."""
    return "'" + value if risky(value) else value

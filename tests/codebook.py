"""A table's codebook, declared: what an owner who publishes one would put in the schema."""

from __future__ import annotations

import numpy as np
import pandas as pd

import training
from training.encoding import as_float


def codebook_schema(frame: pd.DataFrame) -> training.TableSchema:
    """Every category domain and numeric range of ``frame`` declared public, as a
    published codebook lists them; here read off the real rows, standing in for the
    owner. Categories in their natural order (numbers as numbers): an encoder's tokens
    follow it, so fits seeded alike stay alike."""
    schema = training.infer_schema(frame)
    for col in schema.modelled:
        if col.kind == training.ColumnKind.CATEGORICAL:
            values = frame[col.name].dropna().unique().tolist()
            ordered = sorted(values, key=lambda v: (str(type(v)), v))
            schema = schema.with_public_categories(col.name, ordered)
        elif col.is_numeric:  # datetimes in epoch seconds, as their encoder counts
            numbers = as_float(frame[col.name], col.kind)
            schema = schema.with_public_bounds(
                col.name, float(np.nanmin(numbers)), float(np.nanmax(numbers))
            )
    return schema

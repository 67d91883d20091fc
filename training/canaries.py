"""Audit canaries made from what a run has already released, never from the rows.

Why here and why this way: a canary planted in a training run is trained into the
released model, so whatever it is built from reaches consumers. Canaries once took
category values and percentiles from the real columns (a value held by one person
was copied into dozens of canaries and entered the released domain) and image
canaries were real images flipped. Now a table canary mixes, column by column, a
category drawn uniformly from the *released* domain and a number drawn uniformly from
the *released* range (declared public, or DP-released by preprocessing, which ran on
the real rows alone before any canary existed); an image canary is uniform
noise of the upload's shape under a class the DP label histogram kept. Their count
follows the DP row count, rounded to a power of two so that it does not move with a
single row. Nothing else about the data enters them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from training.encoding import TableEncoder
    from training.schema import TableSchema

__all__ = [
    "MAX_CANARIES",
    "MIN_CANARIES",
    "ImagePlanter",
    "TablePlanter",
    "canary_count",
    "image_canaries",
    "table_canaries",
]

MIN_CANARIES, MAX_CANARIES = 128, 1024
# (released encoder, schema with what the owner declared public, DP row count) -> rows
# to add to the training data
TablePlanter = Callable[["TableEncoder", "TableSchema", float], "pd.DataFrame"]
# (classes kept by DP selection, image shape (H, W, C), DP row count) -> (images, labels
# as indices into those classes) to add to the training data
ImagePlanter = Callable[[list[str], tuple[int, int, int], float], tuple[np.ndarray, np.ndarray]]


def canary_count(dp_rows: float) -> int:
    """About 2% of the DP row count as a power of two, 128 to 1,024: enough canaries for
    a bound, too few to change the model, and the same for tables one row apart."""
    share = max(dp_rows / 50.0, 1.0)
    return int(min(max(2 ** math.floor(math.log2(share)), MIN_CANARIES), MAX_CANARIES))


def table_canaries(
    encoder: TableEncoder, schema: TableSchema, m: int, rng: np.random.Generator
) -> pd.DataFrame:
    """``m`` rows mixing each column independently: a category uniform over the released
    domain, a number uniform over the declared range (else the released one). Not the
    model's bins, which are learned quantiles: two tables under one public schema get the
    same canaries."""
    import pandas as pd

    from training.encoding import MISSING, CategoricalEncoder

    columns = {}
    for column in encoder.columns:
        if isinstance(column, CategoricalEncoder):
            if column.categories:
                tokens = 2 + rng.integers(0, len(column.categories), m)  # past MISSING, OTHER
            else:  # DP selection kept no category: the column is missing in every row
                tokens = np.full(m, MISSING, dtype=np.int64)
            columns[column.name] = column.decode(tokens, rng)
        else:
            declared = schema.column(column.name).public_bounds
            lo, hi = declared or column.value_range
            step = column.step or 1.0  # bins count steps
            span = column.model_copy(update={"bins": [(lo / step, hi / step)], "shapes": []})
            columns[column.name] = span.decode(np.ones(m, dtype=np.int64), rng)
    return pd.DataFrame(columns)


def image_canaries(
    shape: tuple[int, int, int], classes: int, m: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``m`` images of uniform noise of ``shape`` (no real image looks like one, so a
    model's likelihood of one rises only if it memorized it) and labels over ``classes``."""
    images = rng.integers(0, 256, size=(m, *shape), dtype=np.uint8)
    return images, rng.integers(0, classes, m)

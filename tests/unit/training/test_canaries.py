"""Canaries from a released encoder: inside its domain, whatever DP selection kept."""

from __future__ import annotations

import numpy as np

import training
from training.canaries import canary_count, image_canaries, table_canaries
from training.preprocessing import fit_encoders


def test_canaries_lie_in_the_released_domain_even_where_it_is_empty(fair):
    """At a large noise DP selection keeps no category of some columns (the model then
    samples them missing); canaries do the same there and stay in the domain elsewhere."""
    table = fair.head(1_000)
    schema = training.infer_schema(table)
    encoder = fit_encoders(table, schema, sigma=300.0, delta_selection=1e-6, max_bins=32,
                           rng=np.random.default_rng(0)).encoder  # fmt: skip
    empty = [c.name for c in encoder.columns if getattr(c, "categories", None) == []]
    assert empty, "the noise should leave some column without a category"
    rows = table_canaries(encoder, schema, 200, np.random.default_rng(1))
    assert len(rows) == 200
    for column in encoder.columns:
        values = rows[column.name]
        if column.name in empty:
            assert values.isna().all()
        elif hasattr(column, "categories"):
            assert set(values.dropna()) <= set(column.categories)
        else:
            assert values.between(*column.value_range).all()


def test_the_count_follows_the_dp_row_count_in_powers_of_two():
    assert [canary_count(r) for r in (10, 6_000, 9_999, 10_400, 60_000, 10**7)] == [
        128,
        128,
        128,
        128,
        1024,
        1024,
    ]
    assert canary_count(25_600) == 512 and canary_count(25_599) == 256


def test_image_canaries_are_noise_of_the_shape_under_kept_classes():
    images, labels = image_canaries((8, 8, 1), 3, 50, np.random.default_rng(0))
    assert images.shape == (50, 8, 8, 1) and images.dtype == np.uint8
    assert set(labels) <= {0, 1, 2} and images.std() > 60  # uniform noise: std ~74

"""Invariant: privacy noise comes from one secret source (``training.dp.secret_random``)
that no seed, environment variable or framework reset can fix, in one process and
under DDP, for every generator.

How it is observed: every seed the user or a framework can set is pinned (the spec's
seed, ``PL_GLOBAL_SEED``, torch, numpy, ``random``) and a run is repeated. Batches are
the whole table (sampling rate 1), so Poisson sampling draws nothing; what still
differs between the two runs can only be privacy noise. The control pins the secret
source itself: the same two runs then end with identical weights, so nothing else in
them was random.
"""

from __future__ import annotations

import random
import time

import numpy as np
import pandas as pd
import pytest
import torch

import training
from tests.codebook import codebook_schema
from training.dp import secret_random
from training.images import ImageSet
from training.pipeline import fit_prepared
from training.pipeline.tables import calibrate, prepare_table

pytestmark = pytest.mark.slow
ROWS = 400


def _pin_every_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)


def _pin_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secret_random, "secret_bits", lambda bits=128: 12345)


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.net.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def _spec(generator: str, **update) -> training.TrainSpec:
    dp = training.DPConfig(epsilon=2.0, calibration_share=0.0)
    base = dict(generator=generator, dp=dp, epochs=2, batch_size=4096, seed=0, hidden_size=16)
    return training.TrainSpec(**{**base, **update})


@pytest.fixture(scope="module")
def table(fair: pd.DataFrame) -> pd.DataFrame:
    return fair.iloc[:ROWS]


@pytest.fixture(scope="module")
def public_schema(fair: pd.DataFrame) -> training.TableSchema:
    """fair's codebook: answer codes and ranges declared public, so preprocessing
    releases only the row count."""
    return codebook_schema(fair)


@pytest.fixture(scope="module")
def prepared(table, public_schema):
    """One preprocessing release shared by every run below: the runs differ in DP-SGD."""
    return prepare_table(table, _spec("tabular-ar"), public_schema)


def _fit_twice(fit, monkeypatch) -> tuple[dict, dict]:
    runs = []
    for _ in range(2):
        _pin_every_seed(monkeypatch)
        runs.append(_weights(fit()))
    return runs[0], runs[1]


def test_tabular_ar_noise_ignores_every_seed_in_one_process(prepared, monkeypatch):
    def fit():
        return fit_prepared(prepared, _spec("tabular-ar"), started=time.perf_counter())

    assert fit().privacy.sample_rate == 1.0  # whole-table batches: no sampling randomness
    first, second = _fit_twice(fit, monkeypatch)
    assert not _same(first, second)
    _pin_the_secret(monkeypatch)
    first, second = _fit_twice(fit, monkeypatch)
    assert _same(first, second)  # the control: nothing but the secret source varied


def test_tabular_ar_noise_ignores_every_seed_under_ddp(prepared, monkeypatch):
    """Two gloo processes, ``PL_GLOBAL_SEED`` inherited by both: Lightning's DDP strategy
    reseeds every rank from it after Opacus is set up, which once fixed rank 0's noise."""

    def fit():
        spec = _spec("tabular-ar", devices=2, epochs=1)
        return fit_prepared(prepared, spec, started=time.perf_counter())

    first, second = _fit_twice(fit, monkeypatch)
    assert not _same(first, second)


@pytest.mark.parametrize("generator", ["tabular-gan"])
def test_gan_noise_ignores_every_seed(generator, table, public_schema, monkeypatch):
    def fit():
        return training.fit(table, _spec(generator), schema=public_schema)

    first, second = _fit_twice(fit, monkeypatch)
    assert not _same(first, second)
    _pin_the_secret(monkeypatch)
    first, second = _fit_twice(fit, monkeypatch)
    assert _same(first, second)


@pytest.mark.parametrize("generator", ["image-ar", "image-gan"])
def test_image_noise_ignores_every_seed(generator, digits, monkeypatch):
    images = ImageSet(digits.images[:300], digits.labels[:300], digits.classes)

    def fit():
        spec = _spec(generator, hidden_size=8, depth=1, epochs=1)
        return training.fit(images, spec, public_classes=True)

    first, second = _fit_twice(fit, monkeypatch)
    assert not _same(first, second)
    _pin_the_secret(monkeypatch)
    first, second = _fit_twice(fit, monkeypatch)
    assert _same(first, second)


def test_preprocessing_and_calibration_noise_ignore_every_seed(table, monkeypatch):
    """Bounds, bins, domains and the row count (an inferred schema: all learned under
    DP), then the calibration's selection and measurements from one fixed draw."""
    spec = training.TrainSpec(dp=training.DPConfig(epsilon=1.0), seed=0)
    schema = training.infer_schema(table)
    released, calibrations = [], []
    for _ in range(2):
        _pin_every_seed(monkeypatch)
        prepared = prepare_table(table, spec, schema)
        released.append((prepared.rows, prepared.fitted.encoder.model_dump_json()))
        tokens = prepared.tokens.numpy()

        def draw(n: int, _calibration=None, tokens=tokens) -> np.ndarray:
            return tokens[np.arange(n) % len(tokens)]

        _pin_every_seed(monkeypatch)
        calibrations.append(calibrate(draw, prepared)[0].model_dump_json())
    assert released[0] != released[1]
    assert calibrations[0] != calibrations[1]

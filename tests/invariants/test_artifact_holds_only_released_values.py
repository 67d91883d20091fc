"""Invariant: every value in a DP artifact that depends on the rows is a DP release the
accountant charged (or was declared public); and every field of a release card is
either covered by epsilon or named on the card as not covered.

How: the same spec is fitted on a real table and on its neighbour (one row removed),
with every seed and the secret source itself pinned, so the two runs differ only
through the data. The artifact's config is walked; each path whose value differs
must lie under a DP release, and that release must be in the privacy accounting. A
non-DP fit is the control: its loss curve differs between the neighbours and the walk
flags it, so the walk does see data-dependent fields.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import training
from training.artifacts import read_config
from training.dp import secret_random
from training.images import ImageSet

pytestmark = pytest.mark.slow

# path prefix -> what released it (checked against the privacy block)
DP_RELEASES = {
    ".encoder": "preprocessing",  # bins, categories, nullability: DP or declared
    ".model.vocab_sizes": "preprocessing",  # the encoder's sizes
    ".classes": "preprocessing",  # images: classes kept by the DP label histogram
    ".class_weights": "preprocessing",  # images: the DP label histogram
    ".calibration": "calibration",  # DP-measured marginals
    ".privacy.calibration_pairs": "calibration",  # DP pair selection
    ".weights_sha256": "training",  # the DP-SGD output
    # the plan follows the DP row count (sampling rate, batch, steps, the noise solved)
    ".privacy": "preprocessing",
    ".summary": "preprocessing",
}
NOT_DATA = {".summary.fit_seconds"}  # a clock, not the rows


def _pin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secret_random, "secret_bits", lambda bits=128: 987654321)
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)


def _walk(value, path: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(_walk(item, f"{path}.{key}"))
        return out
    return {path: json.dumps(value, sort_keys=True)}


def _differing(a: dict, b: dict) -> set[str]:
    flat_a, flat_b = _walk(a), _walk(b)
    return {p for p in flat_a.keys() | flat_b.keys() if flat_a.get(p) != flat_b.get(p)} - NOT_DATA


def _config(model, directory: Path) -> dict:
    return read_config(model.save(directory))


def _unreleased(paths: set[str]) -> set[str]:
    return {p for p in paths if not any(p.startswith(prefix) for prefix in DP_RELEASES)}


def _charged(config: dict, release: str) -> bool:
    privacy = config["privacy"]
    if release == "preprocessing":
        return (privacy["epsilon_preprocessing"] or 0) > 0 or not privacy["private_metadata"]
    if release == "calibration":
        return (privacy["epsilon_calibration"] or 0) > 0
    return (privacy["epsilon_training"] or 0) > 0


def _check(first: dict, second: dict) -> set[str]:
    differing = _differing(first, second)
    assert not _unreleased(differing), _unreleased(differing)
    for path in differing:
        release = next(r for prefix, r in DP_RELEASES.items() if path.startswith(prefix))
        assert _charged(first, release), (path, release)
    return differing


@pytest.fixture(scope="module")
def neighbours(fair: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, training.TableSchema]:
    table = fair.iloc[:2_000]
    schema = training.infer_schema(table)  # the owner's confirmed schema: an input
    return table, table.drop(index=table.index[123]), schema


@pytest.mark.parametrize("generator", ["tabular-ar", "tabular-gan"])
def test_a_table_artifact_holds_only_dp_releases(
    generator, neighbours, fair, monkeypatch, tmp_path
):
    """The neighbour (one row removed), then a disjoint slice of the same survey: in both
    pairs every differing value is a DP release; the disjoint pair shows the walk sees
    the encoder change."""
    table, neighbour, schema = neighbours
    spec = training.TrainSpec(generator=generator, dp=training.DPConfig(epsilon=1.0), epochs=1)
    configs = []
    for i, data in enumerate((table, neighbour, fair.iloc[2_000:4_000])):
        _pin(monkeypatch)
        configs.append(_config(training.fit(data, spec, schema=schema), tmp_path / str(i)))
    assert ".weights_sha256" in _check(configs[0], configs[1])
    assert any(p.startswith(".encoder") for p in _check(configs[0], configs[2]))


def test_an_image_artifact_holds_only_dp_releases(digits, monkeypatch, tmp_path):
    images = digits  # all 1,797: at epsilon 5 the DP label histogram keeps the classes
    neighbour = ImageSet(
        np.delete(images.images, 7, 0), np.delete(images.labels, 7), images.classes
    )
    spec = training.TrainSpec(
        generator="image-ar", dp=training.DPConfig(epsilon=5.0), epochs=1, hidden_size=8, depth=1
    )
    configs = []
    for i, data in enumerate((images, neighbour)):
        _pin(monkeypatch)
        configs.append(_config(training.fit(data, spec), tmp_path / str(i)))
    assert ".weights_sha256" in _check(*configs)


def test_the_walk_flags_a_non_dp_loss_curve(neighbours, monkeypatch, tmp_path):
    """The control: without DP the artifact keeps its loss curve (an average over real
    rows, never noised); the walk must find it outside every DP release."""
    table, neighbour, schema = neighbours
    spec = training.TrainSpec(dp=training.DPConfig(epsilon=None), epochs=1)
    configs = []
    for i, data in enumerate((table, neighbour)):
        _pin(monkeypatch)
        configs.append(_config(training.fit(data, spec, schema=schema), tmp_path / str(i)))
    assert ".training.epoch_losses" in _unreleased(_differing(*configs))


CARD_FIELDS = {
    # covered by epsilon, or the accounting of it
    "epsilon", "delta", "epsilon_preprocessing", "epsilon_training", "epsilon_calibration",
    "covered_by_epsilon", "not_covered_by_epsilon", "classes",
    # named on the card as not covered
    "columns", "gates", "override", "image_shape", "generator", "created_at",
    # identifiers and the kind (no data)
    "id", "model_id", "kind",
    # the owner's decisions and words, named on the card as not covered
    "withdrawn_at", "withdrawn_reason", "name", "description", "dataset_name",
    "dataset_id", "dataset_version",
}  # fmt: skip


def test_every_release_card_field_is_classified():
    """A field added to the card without saying whether epsilon covers it fails here."""
    from service.api.releases import NOT_COVERED_BY_EPSILON, release_card
    from service.db import Model, Release

    model = Model(
        id="m", generator="image-ar", privacy={"epsilon": 1.0, "delta": 1e-5},
        schema_json={"kind": "images", "columns": [], "classes": ["0"], "height": 8,
                     "width": 8, "channels": 1},
        gates={"gates": [{"name": "fidelity", "status": "pass"}], "passed": True},
    )  # fmt: skip
    card = release_card(Release(id="r", model_id="m"), model)
    assert all("domain" in c for c in card["columns"])  # released domains: covered
    assert set(card) == CARD_FIELDS
    text = " ".join(NOT_COVERED_BY_EPSILON)
    for named in ("column names", "gate results", "image size", "generator", "withdrawal",
                  "name and description"):  # fmt: skip
        assert named in text

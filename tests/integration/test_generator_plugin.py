"""Adding a generator is one folder and one registry entry (issue 20).

``tests/plugins/tiny_generator`` (independent column marginals) lives outside Sanitas
and is named only by ``SANITAS_GENERATOR_PLUGINS``. Through the CLI it trains under DP,
saves, loads and samples; through the API (the job child and the sampler are other
processes) a job trains it audited, its release streams rows, and the served OpenAPI
lists it. Its samples must carry the real table's column distributions.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import training
from tests.service.conftest import make_api, wait_for_job

pytestmark = pytest.mark.slow

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
NAME = "tiny-marginals"
COLUMNS = ["rate_marriage", "children", "religious", "occupation"]


@pytest.fixture
def plugin_env(monkeypatch) -> dict[str, str]:
    monkeypatch.setenv("SANITAS_GENERATOR_PLUGINS", "tiny_generator")
    path = os.pathsep.join(
        [str(PLUGINS), os.environ.get("PYTHONPATH", ""), str(PLUGINS.parents[1])]
    )
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.syspath_prepend(str(PLUGINS))
    return dict(os.environ)


def _worst_tv(real: pd.DataFrame, synthetic: pd.DataFrame) -> float:
    """The largest total variation between a column's real and synthetic values."""
    tvs = []
    for column in COLUMNS:
        p = real[column].round().value_counts(normalize=True)
        q = synthetic[column].round().value_counts(normalize=True)
        tvs.append(0.5 * p.subtract(q, fill_value=0).abs().sum())
    return max(tvs)


def test_a_plugin_generator_trains_saves_loads_and_samples_through_the_cli(
    plugin_env, fair, tmp_path
):
    data = tmp_path / "fair.csv"
    fair.to_csv(data, index=False)
    # the survey's codebook is public: declared so, DP selection keeps rare answers
    schema = training.infer_schema(fair)
    for column in COLUMNS:
        schema = schema.with_public_categories(column, sorted(fair[column].unique().tolist()))
    (tmp_path / "schema.json").write_text(schema.to_json())
    cli = [sys.executable, "-m", "service.cli"]
    trained = subprocess.run(
        [*cli, "train", str(data), "--generator", NAME, "--epsilon", "1", "--out",
         str(tmp_path / "model"), "--schema", str(tmp_path / "schema.json"), "--json"],
        env=plugin_env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert summary["generator"] == NAME and 0 < summary["epsilon"] <= 1.0
    sampled = subprocess.run(
        [*cli, "sample", str(tmp_path / "model"), "-n", "5000", "--seed", "1", "--out",
         str(tmp_path / "rows.csv")],
        env=plugin_env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert sampled.returncode == 0, sampled.stderr
    rows = pd.read_csv(tmp_path / "rows.csv")
    assert len(rows) == 5000 and list(rows.columns) == list(fair.columns)
    assert _worst_tv(fair, rows) < 0.1
    helped = subprocess.run(
        [*cli, "train", "--help"], env=plugin_env, capture_output=True, text=True
    )
    assert NAME in helped.stdout


def test_a_plugin_generator_trains_and_releases_through_the_api(plugin_env, fair, tmp_path):
    api_gen = make_api(tmp_path, f"sqlite:///{tmp_path / 'sanitas.db'}", worker_threads=1)
    api = next(api_gen)
    try:
        schema = api.client.get("/openapi.json").json()["components"]["schemas"]
        assert NAME in json.dumps(schema["JobRequest"]) or NAME in json.dumps(schema)
        ds = api.upload(fair, budget=2.0)
        # the survey's codebook is public: declared so, DP selection keeps rare answers
        codebook = {c: sorted(fair[c].unique().tolist()) for c in COLUMNS}
        patched = api.client.patch(
            f"/v1/datasets/{ds['id']}/schema", json={"categories": codebook},
            headers=api.auth("owner"),
        )  # fmt: skip
        assert patched.status_code == 200, patched.text
        job = api.client.post(
            "/v1/jobs", headers=api.auth("owner"),
            json={"dataset_id": ds["id"], "generator": NAME, "epsilon": 1.0, "audit": True},
        ).json()  # fmt: skip
        job = wait_for_job(api, job["id"])
        assert job["state"] == "succeeded", job["error"]
        model = api.client.get(f"/v1/models/{job['model_id']}", headers=api.auth("auditor")).json()
        assert model["generator"] == NAME and 0 < model["privacy"]["epsilon"] <= 1.0
        release = api.client.post(
            "/v1/releases", headers=api.auth("owner"),
            json={"model_id": model["id"], "override_reason": "plugin test: gates read"},
        )  # fmt: skip
        assert release.status_code == 201, release.text
        csv = api.client.get(
            f"/v1/releases/{release.json()['id']}/samples?n=5000&seed=2",
            headers=api.auth("consumer"),
        )
        rows = pd.read_csv(io.StringIO(csv.text))
        assert len(rows) == 5000 and _worst_tv(fair, rows) < 0.1
        unknown = api.client.post(
            "/v1/jobs", headers=api.auth("owner"),
            json={"dataset_id": ds["id"], "generator": "no-such-model", "epsilon": 1.0},
        )  # fmt: skip
        assert unknown.status_code == 422 and NAME in unknown.text
    finally:
        api_gen.close()

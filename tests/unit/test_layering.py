"""The layering rules of DESIGN.md, checked."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_hold():
    done = subprocess.run([Path(sys.executable).parent / "lint-imports"], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken" in done.stdout


def test_service_entry_points_leave_torch_out():
    code = "import sys, service.cli, training, training.spec; " \
           "bad = [m for m in ('torch', 'opacus', 'sdmetrics', 'sklearn') if m in sys.modules]; " \
           "print(bad); sys.exit(1 if bad else 0)"  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_opacus_is_imported_in_one_module_only():
    users = [p.relative_to(ROOT).as_posix() for p in (ROOT / "training").rglob("*.py")
             if "import opacus" in p.read_text() or "from opacus" in p.read_text()]  # fmt: skip
    assert users == ["training/privacy.py"]


def test_sdmetrics_is_imported_in_one_module_only():
    users = [p.relative_to(ROOT).as_posix() for p in (ROOT / "evaluation").rglob("*.py")
             if "sdmetrics" in p.read_text() and "import" in p.read_text()]  # fmt: skip
    assert users == ["evaluation/fidelity.py"]

"""Small functions stay small: none over 60 lines in the product (migrations aside), and
each generator's name stands in the registry and its own folder only (issue 20)."""

from __future__ import annotations

import ast
from pathlib import Path

from training import registry

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("training", "evaluation", "service")


def _sources() -> list[Path]:
    return [
        p
        for package in PACKAGES
        for p in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in p.parts
    ]


def test_no_function_is_over_sixty_lines():
    long = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > 60:
                    long.append(f"{path.relative_to(ROOT)}:{node.name} ({lines} lines)")
    assert not long


def test_a_generator_is_named_only_in_the_registry_and_its_folder():
    strays = []
    for entry in registry.entries():
        folder = ROOT / Path(*entry.package.split("."))
        for path in _sources():
            if path.is_relative_to(folder) or path == ROOT / "training" / "registry.py":
                continue
            if entry.name in path.read_text():
                strays.append(f"{entry.name} in {path.relative_to(ROOT)}")
    assert not strays


def test_no_module_imports_one_that_imports_it_back():
    """No import cycles in the product (celery_app <-> runner was one), lazy imports
    inside functions included: a cycle hides which module depends on which."""
    import grimp

    graph = grimp.build_graph(*PACKAGES)
    cycles = {
        tuple(sorted((a, b)))
        for a in graph.modules
        for b in graph.find_modules_directly_imported_by(a)
        if not a.startswith(b + ".") and not b.startswith(a + ".")
        and graph.chain_exists(importer=b, imported=a)
    }  # fmt: skip
    assert not cycles

"""Render an evaluation as one self-contained HTML page, a PDF and a versioned JSON."""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

from evaluation.errors import EvaluationError
from evaluation.report.composition import composition

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "ReportError",
    "load_report",
    "render_html",
    "report_schema",
    "validate_report",
    "write_report",
]

GATE_TITLES = {
    "exact_copies": "Exact copies of training rows",
    "dcr_share": "Closeness to training rows",
    "membership_inference": "Membership inference",
    "privacy_audit": "Empirical epsilon audit",
    "fidelity": "Fidelity floor",
}
ACCOUNTING_KEYS = [
    "epsilon", "delta", "target_epsilon", "epsilon_preprocessing", "epsilon_calibration",
    "epsilon_training", "delta_partition_selection", "noise_multiplier",
    "preprocessing_noise_multiplier", "preprocessing_queries", "sample_rate", "steps",
    "max_grad_norm", "accountant", "public_metadata", "private_metadata",
    "calibration_noise_multipliers", "calibration_pairs",
]  # fmt: skip


class ReportError(EvaluationError):
    """A report document is malformed or cannot be rendered."""


def report_schema(kind: str = "table") -> dict[str, Any]:
    """The JSON schema of a report.json: a table's, or (``kind="images"``) an image set's."""
    name = "image_report.schema.json" if kind == "images" else "report.schema.json"
    return json.loads(resources.files("evaluation.report").joinpath(name).read_text())


def validate_report(data: dict[str, Any]) -> None:
    import jsonschema

    kind = "images" if data.get("kind") == "images" else "table"
    try:
        jsonschema.validate(data, report_schema(kind))
    except jsonschema.ValidationError as e:
        raise ReportError(f"report.json does not match its {kind} schema: {e.message}") from e


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return "n/a" if value is None else str(value)


def _num(value: Any, pattern: str) -> str:
    """printf-style for a number; "n/a" for a metric that could not be computed (None)."""
    return "n/a" if value is None else pattern % value


# What a report page may load: its own inline style and PNG data URIs, nothing else (no
# script, no remote or file fetch). Sent as a header by the service and repeated in the
# page, so a report.html opened from disk is held to it too.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
FIGURE_PREFIX = "data:image/png;base64,"


def render_html(data: dict[str, Any]) -> str:
    """The report page. Every value is escaped (column names, category values and class
    names are the uploader's strings: hostile), whatever the template's file name."""
    from jinja2 import Environment, PackageLoader

    from evaluation.report.plots import all_figures

    env = Environment(loader=PackageLoader("evaluation.report", "templates"), autoescape=True)
    env.globals["csp"] = CONTENT_SECURITY_POLICY
    env.filters["num"] = _num
    failed = [g for g in data["gates"] if g["status"] == "fail"]
    if data.get("kind") == "images":
        for name, figure in data.get("figures", {}).items():
            if figure is not None and not (
                isinstance(figure, str) and figure.startswith(FIGURE_PREFIX)
            ):
                raise ReportError(f"figure {name!r} is not an inline PNG")
        return env.get_template("image_report.html.j2").render(
            data=data, passed=not failed, failed=failed, gate_titles=GATE_TITLES,
            accounting_keys=ACCOUNTING_KEYS, fmt=_fmt, composition=composition(data.get("privacy")),
        )  # fmt: skip
    return env.get_template("report.html.j2").render(
        data=data, figures=all_figures(data), passed=not failed, failed=failed,
        gate_titles=GATE_TITLES, accounting_keys=ACCOUNTING_KEYS, fmt=_fmt, e=math.e,
        composition=composition(data.get("privacy")),
    )  # fmt: skip


def write_report(data: dict[str, Any], out: str | Path, *, pdf: bool = True) -> dict[str, Path]:
    """report.json, report.html and (unless ``pdf=False``) report.pdf in ``out``."""
    validate_report(data)
    if (explained := composition(data.get("privacy"))) is not None:
        data = {**data, "privacy": {**data["privacy"], "composition": explained}}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "html": out / "report.html"}
    paths["json"].write_text(json.dumps(data, indent=2, allow_nan=False))
    html = render_html(data)
    paths["html"].write_text(html, encoding="utf-8")
    if pdf:
        from weasyprint import HTML

        paths["pdf"] = out / "report.pdf"
        HTML(string=html, base_url=None, url_fetcher=_inline_only()).write_pdf(paths["pdf"])
    return paths


def _inline_only() -> Any:
    """WeasyPrint's fetcher for reports: inline ``data:`` URIs only. Its default follows
    file:// and http://, which let a column name attach the server's files to a PDF."""
    from weasyprint.urls import URLFetcher

    return URLFetcher(allowed_protocols={"data"}, allow_redirects=False)


def load_report(path: str | Path) -> dict[str, Any]:
    """Read and validate a report.json (for re-rendering)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ReportError(f"cannot read report {path}: {e}") from e
    validate_report(data)
    return data

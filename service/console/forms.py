"""Form fields to API bodies. Nothing is checked here beyond shape: the API checks,
and its refusal (named fields, allowed values) is what the user reads."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData

__all__ = ["column_patch", "job_options", "numbers", "text"]


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def numbers(form: FormData, name: str) -> float | str | None:
    """A number as typed: a float, None when left empty, the text itself when it is not a
    number (so that the API's 422 names the field and the value)."""
    raw = text(form, name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        return raw


def column_patch(form: FormData) -> dict[str, Any]:
    """One column of PATCH /v1/datasets/{id}/schema: the fields the owner filled in."""
    patch: dict[str, Any] = {"name": text(form, "column")}
    if kind := text(form, "kind"):
        patch["kind"] = kind
    low, high = numbers(form, "bound_low"), numbers(form, "bound_high")
    if low is not None or high is not None:
        patch["public_bounds"] = [low, high]
    if categories := text(form, "categories"):
        patch["public_categories"] = [c.strip() for c in categories.splitlines() if c.strip()]
    if nullable := text(form, "nullable"):
        patch["nullable"] = nullable == "yes"
    return patch


def job_options(form: FormData) -> dict[str, Any]:
    """What POST /v1/jobs (or a schedule's job) takes, from the job form."""
    options: dict[str, Any] = {"epsilon": numbers(form, "epsilon"),
                               "audit": text(form, "audit") == "on"}  # fmt: skip
    if generator := text(form, "generator"):
        options["generator"] = generator
    if (share := numbers(form, "calibration_share")) is not None:
        options["calibration_share"] = share
    if (epochs := numbers(form, "epochs")) is not None:
        # a whole number as an int; anything else as typed, for the API to refuse by name
        whole = isinstance(epochs, float) and epochs.is_integer()
        options["epochs"] = int(epochs) if whole else epochs
    if target := text(form, "target_column"):
        options["target_column"] = target
    return options

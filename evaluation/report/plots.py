"""The report's figures, drawn from the report JSON alone and embedded as PNG data URIs."""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np

# column names and category values are the uploader's strings: drawn as text, never
# parsed as mathtext (a stray "$" would fail the report, a crafted one costs CPU)
matplotlib.rcParams["text.parse_math"] = False

__all__ = ["all_figures"]

REAL, SYNTHETIC = "#4c72b0", "#dd8452"


def _uri(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def distributions(items: list[dict[str, Any]]) -> str:
    cols = 3
    rows = math.ceil(len(items) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(12, 2.6 * rows), squeeze=False)
    for ax, item in zip(axes.flat, items, strict=False):
        x = np.arange(len(item["labels"]))
        ax.bar(x - 0.2, item["real"], 0.4, color=REAL, label="real")
        ax.bar(x + 0.2, item["synthetic"], 0.4, color=SYNTHETIC, label="synthetic")
        ax.set_title(f"{item['column']} ({item['kind']})", fontsize=9)
        ax.set_xticks(x, item["labels"], rotation=60, ha="right", fontsize=6)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes.flat[len(items) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return _uri(fig)


def association_difference(assoc: dict[str, Any]) -> str:
    names = assoc["columns"]
    diff = np.abs(np.asarray(assoc["real"]) - np.asarray(assoc["synthetic"]))
    size = max(4.0, 0.45 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(diff, vmin=0, vmax=max(0.3, float(diff.max())), cmap="Reds")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_title("|Cramer's V real - synthetic| per column pair", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _uri(fig)


def dcr_histogram(hist: dict[str, Any]) -> str:
    edges = np.asarray(hist["edges"])
    mids, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(mids, hist["holdout"], width, color=REAL, alpha=0.6, label="real holdout -> train")
    ax.bar(mids, hist["synthetic"], width, color=SYNTHETIC, alpha=0.6, label="synthetic -> train")
    ax.set_xlabel("distance to closest training record")
    ax.set_ylabel("share of rows")
    ax.legend(fontsize=8)
    return _uri(fig)


def roc_curve(mia: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    ax.plot(mia["roc"]["fpr"], mia["roc"]["tpr"], color=SYNTHETIC, label=f"AUC {mia['auc']:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=8, loc="lower right")
    return _uri(fig)


def loss_curve(losses: list[float]) -> str:
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.plot(range(1, len(losses) + 1), losses, color=REAL)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    return _uri(fig)


def all_figures(data: dict[str, Any]) -> dict[str, str]:
    """Every figure of the report, keyed by name (absent when its data is)."""
    fidelity, mem = data["fidelity"], data["memorization"]
    figures = {
        "distributions": distributions(fidelity["distributions"]),
        "associations": association_difference(fidelity["associations"]),
        "dcr": dcr_histogram(mem["dcr"]["histogram"]),
        "roc": roc_curve(mem["mia"]),
    }
    losses = data.get("training", {}).get("epoch_losses") or []
    if losses:
        figures["losses"] = loss_curve(losses)
    return figures

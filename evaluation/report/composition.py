"""How a model's epsilon parts add up to its guarantee, said where the parts are shown.

Why: a report lists what preprocessing, calibration and DP-SGD would each cost alone,
at the model's delta; read as a budget split they seem to overspend (0.10 + 0.70 + 0.67
against a total of 1.00). The total composes their privacy-loss curves in one
accountant, which costs less than adding epsilons; only the total is the guarantee.
"""

from __future__ import annotations

from typing import Any

__all__ = ["composition"]

PARTS = {
    "epsilon_preprocessing": "preprocessing (DP histograms: bounds, categories, labels)",
    "epsilon_calibration": "calibration (measured 1-way and 2-way marginals)",
    "epsilon_training": "DP-SGD training",
}


def composition(privacy: dict[str, Any] | None) -> dict[str, Any] | None:
    """The parts, their plain sum and the composed total, with the sentence that joins
    them; None for a model with no parts recorded (no DP, or an older artifact)."""
    if not privacy or privacy.get("epsilon") is None:
        return None
    parts = {key: float(privacy[key]) for key in PARTS if privacy.get(key) is not None}
    if not parts:
        return None
    total, added = float(privacy["epsilon"]), sum(parts.values())
    name = str(privacy.get("accountant") or "the accountant")
    name = name.upper() if name in ("prv", "rdp") else name
    if len(parts) == 1:
        explanation = f"All of epsilon ({total:.3g}) went to {PARTS[next(iter(parts))]}."
    else:
        explanation = (
            "Each part is the epsilon that step alone would cost at this model's delta. "
            f"They are not shares of the total: {name} composes the Gaussian releases and "
            "the DP-SGD steps as one mechanism, whose epsilon "
            f"({total:.3g}) is the guarantee and is less than the parts added up "
            f"({added:.3g}, the bound basic composition would give)."
        )
    return {
        "parts": {k: {"epsilon_alone": v, "what": PARTS[k]} for k, v in parts.items()},
        "sum_of_parts": added,
        "composed_epsilon": total,
        "delta": privacy.get("delta"),
        "accountant": privacy.get("accountant"),
        "explanation": explanation,
    }

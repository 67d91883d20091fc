"""What to evaluate and where the release gates sit: the evaluation job's wire format.

pydantic and the standard library only, so the service can build and validate these
without importing scikit-learn or sdmetrics. Defaults are documented in
docs/evaluation.md; change them there too.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EvalSpec", "Thresholds"]

Task = Literal["auto", "binary", "multiclass", "regression"]


class Thresholds(BaseModel):
    """Release gates. A gate fails only on evidence, never on noise alone."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # synthetic exact-copy rate above the holdout's by more than this many standard errors
    copy_rate_z: float = Field(default=3.0, gt=0)
    # DCR share: fail when significant at this level AND above 1/2 by more than the margin
    dcr_share_alpha: float = Field(default=0.01, gt=0, lt=1)  # permutation test, 499 draws
    # 0.04: ten DP runs at epsilon 1 on fair (2,000 synthetic rows) gave shares of 49.0% to
    # 52.0%, one at p=0.016; at 0.02 a CI run failed a DP model on a 52%+ share. The
    # finite-sample pull toward the training rows is not memorization.
    dcr_share_margin: float = Field(default=0.04, ge=0, lt=0.5)
    mia_auc_max: float = Field(default=0.6, gt=0.5, le=1)
    # audit: the measured lower bound may exceed the claimed epsilon by this much (noise-free
    # bound, so 0 by default)
    audit_tolerance: float = Field(default=0.0, ge=0)
    fidelity_min: float = Field(default=0.6, ge=0, le=1)


class EvalSpec(BaseModel):
    """Options of one evaluation; everything has a default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    targets: list[str] = Field(default_factory=list)  # empty: up to 3 chosen from the schema
    task: Task = "auto"
    max_rows: int = Field(default=20_000, ge=100)  # per table, in the quadratic metrics
    n_attacks: int = Field(default=300, ge=10)
    attack_secrets: list[str] = Field(default_factory=list)  # empty: the first target
    risks: bool = True
    seed: int = 0
    thresholds: Thresholds = Field(default_factory=Thresholds)

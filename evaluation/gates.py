"""Release gates: each metric turned into pass / fail / not_run with a plain reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evaluation.audit import AuditResult
from evaluation.memorization import Memorization
from evaluation.spec import Thresholds

__all__ = ["Gate", "release_gates"]

Status = Literal["pass", "fail", "not_run"]


@dataclass(frozen=True)
class Gate:
    name: str
    status: Status
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "reason": self.reason}


def _copies(m: Memorization | None, t: Thresholds) -> Gate:
    name = "exact_copies"
    if m is None:
        return Gate(name, "not_run", "memorization metrics were not computed")
    rates = (
        f"{m.exact_copy_rate:.2%} of synthetic rows equal a training row; "
        f"{m.holdout_copy_rate:.2%} of real holdout rows do"
    )
    if m.copy_z > t.copy_rate_z:
        return Gate(name, "fail", f"{rates}: more copies than chance (z={m.copy_z:.1f})")
    return Gate(name, "pass", f"{rates}: no more than real unseen rows")


def _dcr_share(m: Memorization | None, t: Thresholds) -> Gate:
    name = "dcr_share"
    if m is None:
        return Gate(name, "not_run", "memorization metrics were not computed")
    excess = m.dcr_share - m.dcr_share_expected
    text = (
        f"{m.dcr_share:.1%} of synthetic rows lie closer to training rows than to holdout "
        f"rows (expected {m.dcr_share_expected:.0%} without memorization, "
        f"p={m.dcr_share_p_value:.2g})"
    )
    if m.dcr_share_p_value < t.dcr_share_alpha and excess > t.dcr_share_margin:
        return Gate(name, "fail", f"{text}: synthetic rows sit near training rows")
    return Gate(name, "pass", text)


def _mia(m: Memorization | None, t: Thresholds) -> Gate:
    name = "membership_inference"
    if m is None:
        return Gate(name, "not_run", "memorization metrics were not computed")
    low, high = m.mia_auc_ci
    text = (
        f"distance attack AUC {m.mia_auc:.3f} (95% CI {low:.3f}-{high:.3f}), limit {t.mia_auc_max}"
    )
    if m.mia_auc > t.mia_auc_max:
        return Gate(name, "fail", f"{text}: an attacker can tell training rows apart")
    return Gate(name, "pass", text)


def _audit(audit: AuditResult | None, claimed: float | None, t: Thresholds) -> Gate:
    name = "privacy_audit"
    if audit is None:
        return Gate(name, "not_run", "no audit ran (train with audit to measure a lower bound)")
    bound = f"measured epsilon lower bound {audit.epsilon_lower_bound:.2f}"
    if claimed is None:
        return Gate(
            name, "not_run", f"{bound}, but the model claims no epsilon (trained without DP)"
        )
    if audit.epsilon_lower_bound > claimed + t.audit_tolerance:
        return Gate(name, "fail", f"{bound} exceeds the claimed epsilon {claimed:.2f}")
    return Gate(name, "pass", f"{bound} is within the claimed epsilon {claimed:.2f}")


def _fidelity(quality: float | None, t: Thresholds) -> Gate:
    name = "fidelity"
    if quality is None:
        return Gate(name, "not_run", "the quality report was not computed")
    text = f"sdmetrics quality {quality:.3f}, floor {t.fidelity_min}"
    if quality < t.fidelity_min:
        return Gate(name, "fail", f"{text}: too unlike the real data to be useful")
    return Gate(name, "pass", text)


def release_gates(
    *,
    memorization: Memorization | None,
    quality: float | None,
    audit: AuditResult | None,
    claimed_epsilon: float | None,
    thresholds: Thresholds,
) -> list[Gate]:
    return [
        _copies(memorization, thresholds),
        _dcr_share(memorization, thresholds),
        _mia(memorization, thresholds),
        _audit(audit, claimed_epsilon, thresholds),
        _fidelity(quality, thresholds),
    ]

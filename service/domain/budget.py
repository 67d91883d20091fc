"""The privacy-budget ledger: a charge is one conditional UPDATE, so it is atomic.

``UPDATE datasets SET epsilon_spent = epsilon_spent + e, delta_spent = delta_spent + d
WHERE id = ? AND epsilon_spent + e <= epsilon_budget AND delta_spent + d <= delta``
takes the row lock on PostgreSQL (a concurrent charge waits, then re-checks the
condition against the committed row) and SQLite's single writer lock; a charge that
would overspend either updates nothing and is refused. Both compose by basic
composition: the dataset's (epsilon, delta) bounds the sum of its models'.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from service.db import Dataset, LedgerEntry
from service.errors import Problem

__all__ = ["charge", "refund"]

SLACK = 1e-9  # float sums of charges that exactly fill the budget


def charge(
    s: Session,
    dataset: Dataset,
    epsilon: float,
    delta: float,
    *,
    job_id: str,
    reason: str,
    actor: str | None = None,
    version_id: str | None = None,
) -> None:
    """Reserve ``(epsilon, delta)`` in the caller's transaction, or raise 409 with what
    remains of each."""
    result = s.execute(
        update(Dataset)
        .where(Dataset.id == dataset.id)
        .where(Dataset.epsilon_spent + epsilon <= Dataset.epsilon_budget + SLACK)
        .where(Dataset.delta_spent + delta <= Dataset.delta * (1 + SLACK))
        .values(
            epsilon_spent=Dataset.epsilon_spent + epsilon, delta_spent=Dataset.delta_spent + delta
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        s.rollback()
        s.refresh(dataset)
        remaining = max(dataset.epsilon_budget - dataset.epsilon_spent, 0.0)
        delta_remaining = max(dataset.delta - dataset.delta_spent, 0.0)
        if epsilon > remaining + SLACK:
            detail = (
                f"epsilon {epsilon} exceeds the remaining budget {remaining:.6g} of "
                f"dataset {dataset.id}"
            )
        else:
            detail = (
                f"delta {delta:.3g} exceeds the remaining delta {delta_remaining:.3g} of "
                f"dataset {dataset.id} (its deltas add up: basic composition)"
            )
        raise Problem(
            409, "Budget Exceeded", detail, epsilon_remaining=remaining,
            delta_remaining=delta_remaining,
        )  # fmt: skip
    s.add(
        LedgerEntry(
            dataset_id=dataset.id, job_id=job_id, epsilon=epsilon, delta=delta, reason=reason,
            actor=actor, version_id=version_id,
        )
    )  # fmt: skip


def refund(
    s: Session,
    dataset_id: str,
    epsilon: float,
    delta: float,
    *,
    job_id: str,
    reason: str,
    version_id: str | None = None,
) -> None:
    """Give back a charge of a job that never touched the data."""
    s.execute(
        update(Dataset)
        .where(Dataset.id == dataset_id)
        .values(
            epsilon_spent=Dataset.epsilon_spent - epsilon, delta_spent=Dataset.delta_spent - delta
        )
    )
    s.add(
        LedgerEntry(
            dataset_id=dataset_id, job_id=job_id, epsilon=-epsilon, delta=-delta, reason=reason,
            actor="system", version_id=version_id,
        )
    )  # fmt: skip

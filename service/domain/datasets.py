"""Datasets in the domain: which version a job trains on."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import DatasetVersion

__all__ = ["latest_version"]


def latest_version(s: Session, dataset_id: str) -> DatasetVersion | None:
    """The newest upload of a dataset (a new version never changes an old one)."""
    return s.scalar(
        select(DatasetVersion)
        .where(DatasetVersion.dataset_id == dataset_id)
        .order_by(DatasetVersion.number.desc())
        .limit(1)
    )

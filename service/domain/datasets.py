"""Datasets in the domain: which version a job trains on."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import Dataset, DatasetVersion
from service.domain.records import iso
from service.errors import Problem

__all__ = ["latest_version", "live"]


def live(dataset: Dataset) -> Dataset:
    """``dataset``, or 409 when it was erased (nothing can be added to or read from it)."""
    if dataset.erased_at is not None:
        raise Problem(
            409, "Dataset Erased", f"dataset {dataset.id} was erased at {iso(dataset.erased_at)}"
        )
    return dataset


def latest_version(s: Session, dataset_id: str) -> DatasetVersion | None:
    """The newest upload of a dataset (a new version never changes an old one)."""
    return s.scalar(
        select(DatasetVersion)
        .where(DatasetVersion.dataset_id == dataset_id)
        .order_by(DatasetVersion.number.desc())
        .limit(1)
    )

"""Datasets in the domain: which version a job trains on."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db import Dataset, DatasetVersion
from service.domain.records import iso
from service.errors import Problem

__all__ = ["latest_version", "latest_versions", "live"]


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


def latest_versions(s: Session, dataset_ids: list[str]) -> dict[str, DatasetVersion]:
    """The newest version of each dataset, in one query (a list page read them one by
    one: a query per dataset on every page)."""
    if not dataset_ids:
        return {}
    newest = (
        select(DatasetVersion.dataset_id, func.max(DatasetVersion.number).label("number"))
        .where(DatasetVersion.dataset_id.in_(dataset_ids))
        .group_by(DatasetVersion.dataset_id)
        .subquery()
    )
    rows = s.scalars(
        select(DatasetVersion).join(
            newest,
            (DatasetVersion.dataset_id == newest.c.dataset_id)
            & (DatasetVersion.number == newest.c.number),
        )
    )
    return {v.dataset_id: v for v in rows}

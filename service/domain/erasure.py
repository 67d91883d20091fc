"""Erasing a dataset: what an owner does to honour an erasure request.

The dataset's wrapped data key is deleted in the same transaction that marks it
erased, so from that commit on no copy of its ciphertext anywhere (data directory,
bucket, a versioned bucket's old objects, file backups) can be read; the files are then
deleted as well. What the rows produced goes by the owner's choice:

- reports always go: they were computed on the real training and holdout rows (an
  image report shows real training images);
- models and their releases go too (releases withdrawn, consumers told why), unless
  the owner keeps them: a model is differentially private post-processing of the
  rows, so keeping it is a decision the guarantee allows, not one this code makes.

The ledger and the audit log stay whole: they record what was spent and done, not data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import Dataset, DatasetVersion, Job, JobState, Model, Release, Schedule, now
from service.domain.records import Actor, audit, iso
from service.errors import Problem

__all__ = ["Erasure", "erase_dataset", "summary"]

WITHDRAWN = "the source dataset was erased at its owner's request"


@dataclass
class Erasure:
    """What an erasure changed; ``objects`` are the store keys to delete after commit."""

    versions: int = 0
    models_deleted: list[str] = field(default_factory=list)
    models_kept: list[str] = field(default_factory=list)
    releases_withdrawn: list[str] = field(default_factory=list)
    schedules_deleted: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)


def erase_dataset(s: Session, dataset: Dataset, who: Actor, *, keep_models: bool) -> Erasure:
    """Mark ``dataset`` erased and drop its data key, in the caller's transaction (the
    caller commits, then deletes ``Erasure.objects``). 409 while a job of it is queued
    or running: its worker may hold the plaintext."""
    if dataset.erased_at is not None:
        raise Problem(409, "Dataset Erased", f"dataset {dataset.id} is already erased")
    active = s.scalars(
        select(Job.id).where(
            Job.dataset_id == dataset.id, Job.state.in_([JobState.QUEUED, JobState.RUNNING])
        )
    ).all()
    if active:
        raise Problem(
            409, "Jobs Running",
            f"dataset {dataset.id} has jobs queued or running ({', '.join(active)}): cancel "
            "them (POST /v1/jobs/{id}/cancel) and erase once they have stopped",
            jobs=list(active),
        )  # fmt: skip
    done = Erasure()
    _erase_versions(s, dataset, done)
    _erase_models(s, dataset, done, keep_models=keep_models)
    for sch in s.scalars(select(Schedule).where(Schedule.dataset_id == dataset.id)):
        if sch.state != "deleted":
            sch.state, sch.state_reason = "deleted", "the dataset was erased"
            done.schedules_deleted.append(sch.id)
    dataset.data_key, dataset.erased_at = None, now()
    dataset.schema_json = {"kind": dataset.schema_json.get("kind", "table"), "columns": []}
    audit(
        s, who, "dataset.erase", project_id=dataset.project_id, target=dataset.id,
        versions=done.versions, models_deleted=done.models_deleted,
        models_kept=done.models_kept, releases_withdrawn=done.releases_withdrawn,
        schedules_deleted=done.schedules_deleted,
    )  # fmt: skip
    return done


def _erase_versions(s: Session, dataset: Dataset, done: Erasure) -> None:
    """Each version's file to delete; its row keeps the row and byte counts only (the
    plaintext's SHA-256 would confirm a guess of the whole file)."""
    for version in s.scalars(select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id)):
        if version.path:
            done.objects.append(version.path)
        version.path, version.sha256 = "", ""
        done.versions += 1


def _erase_models(s: Session, dataset: Dataset, done: Erasure, *, keep_models: bool) -> None:
    for model in s.scalars(select(Model).where(Model.dataset_id == dataset.id)):
        if model.report_path:
            done.objects.append(model.report_path)
            model.report_path = None
        if keep_models:
            done.models_kept.append(model.id)
            continue
        if model.path:
            done.objects.append(model.path)
            model.path = ""
        done.models_deleted.append(model.id)
        release = s.scalar(select(Release).where(Release.model_id == model.id))
        if release is not None and release.withdrawn_at is None:
            release.withdrawn_at, release.withdrawn_reason = now(), WITHDRAWN
            done.releases_withdrawn.append(release.id)


def summary(dataset: Dataset, done: Erasure) -> dict[str, Any]:
    return {
        "id": dataset.id,
        "erased_at": iso(dataset.erased_at),
        "versions": done.versions,
        "models_deleted": done.models_deleted,
        "models_kept": done.models_kept,
        "releases_withdrawn": done.releases_withdrawn,
        "schedules_deleted": done.schedules_deleted,
    }

"""Datasets: upload, schema, versions, budget. No route returns a row of them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.api.deps import get_scoped, session
from service.api.pages import Page, PageParams, keyset, page, page_params
from service.api.views import BudgetView, DatasetErased, DatasetView, VersionCreated
from service.db import Dataset, DatasetVersion, Job, LedgerEntry, Role
from service.domain.datasets import latest_version, latest_versions, live
from service.domain.erasure import erase_dataset, summary
from service.domain.records import audit, iso, new_id
from service.errors import Problem
from service.http.auth import Principal, require
from service.storage.data_keys import dataset_keys, new_data_key
from service.storage.image_uploads import IMAGE_FORMATS, store_images
from service.storage.uploads import store_table
from training.schema import INFERENCE_NOTICE  # pydantic and pandas only: no torch

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
READERS = (Role.OWNER, Role.AUDITOR)


def dataset_view(d: Dataset, latest: DatasetVersion | None) -> dict[str, Any]:
    return {
        "id": d.id,
        "name": d.name,
        "kind": d.kind,
        "project_id": d.project_id,
        "epsilon_budget": d.epsilon_budget,
        "epsilon_spent": d.epsilon_spent,
        "epsilon_remaining": max(d.epsilon_budget - d.epsilon_spent, 0.0),
        "delta": d.delta,
        "delta_spent": d.delta_spent,
        "schema": d.schema_json,
        "schema_notice": INFERENCE_NOTICE,
        "erased_at": iso(d.erased_at),
        "created_at": iso(d.created_at),
        "version": None
        if latest is None
        else {
            "id": latest.id,
            "number": latest.number,
            "rows": latest.rows,
            "bytes": latest.bytes,
            # of the plaintext as uploaded: an owner can check the stored copy is theirs
            "sha256": latest.sha256,
        },
    }


def _version(dataset_id: str, number: int, stored: Any) -> DatasetVersion:
    """The version row of an encrypted upload (its SHA-256 is of the plaintext)."""
    return DatasetVersion(
        id=new_id(), dataset_id=dataset_id, number=number, path=str(stored.path),
        format=stored.format, rows=stored.rows, bytes=stored.bytes, sha256=stored.sha256,
    )  # fmt: skip


def _store(request: Request, file: UploadFile, key: bytes) -> Any:
    """A table (.csv, .parquet) or images (.npz arrays, .zip of PNGs in class folders),
    encrypted under the dataset's data key."""
    app = request.app.state
    fmt = Path(file.filename or "").suffix.lower().lstrip(".")
    if fmt in IMAGE_FORMATS:
        stored = store_images(
            file.file,
            fmt,
            key=key,
            data_dir=app.settings.data_dir,
            max_bytes=app.settings.max_upload_bytes,
            max_ratio=app.settings.max_zip_ratio,
        )
    else:
        stored = store_table(
            file.file,
            file.filename,
            key=key,
            data_dir=app.settings.data_dir,
            max_bytes=app.settings.max_upload_bytes,
        )
    app.objects.adopt(str(stored.path))  # into the bucket when there is one
    return stored


@router.post("", status_code=201, response_model=DatasetView, operation_id="uploadDataset")
def upload_dataset(
    request: Request,
    file: Annotated[
        UploadFile,
        File(description="a table (.csv, .parquet) or images (.npz; .zip of PNG class folders)"),
    ],
    name: Annotated[str, Form(min_length=1, max_length=200)],
    epsilon_budget: Annotated[float, Form(gt=0, le=100)],
    delta: Annotated[float, Form(gt=0, lt=1)] = 1e-5,
    who: Principal = Depends(require(Role.OWNER)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    """Upload a table with its privacy budget; answers the inferred schema to confirm."""
    if who.project_id is None:
        raise Problem(422, "No Project", "an admin key has no project to upload into")
    dataset_id = new_id()
    data_key, wrapped = new_data_key(request.app.state.key, dataset_id)
    stored = _store(request, file, data_key)
    dataset = Dataset(
        id=dataset_id,
        data_key=wrapped,
        project_id=who.project_id,
        name=name,
        kind="images" if stored.schema.get("kind") == "images" else "table",
        epsilon_budget=epsilon_budget,
        delta=delta,
        schema_json=stored.schema,
    )
    version = _version(dataset.id, 1, stored)
    s.add(dataset)
    s.flush()
    s.add(version)
    audit(
        s,
        who,
        "dataset.upload",
        project_id=dataset.project_id,
        target=dataset.id,
        rows=stored.rows,
        bytes=stored.bytes,
    )
    s.commit()
    return dataset_view(dataset, version)


@router.get("", response_model=Page[DatasetView], operation_id="listDatasets")
def list_datasets(
    params: PageParams = Depends(page_params),
    who: Principal = Depends(require(*READERS)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    """Datasets of the key's project, oldest first, a page at a time."""
    query = select(Dataset)
    if who.project_id is not None:
        query = query.where(Dataset.project_id == who.project_id)
    rows = list(s.scalars(keyset(query, Dataset.created_at, Dataset.id, params)))
    newest = latest_versions(s, [d.id for d in rows])
    return page(
        rows,
        params,
        lambda d: (d.created_at, d.id),
        lambda d: dataset_view(d, newest.get(d.id)),
    )


@router.get("/{dataset_id}", response_model=DatasetView, operation_id="getDataset")
def get_dataset(
    dataset_id: str, who: Principal = Depends(require(*READERS)), s: Session = Depends(session)
) -> dict[str, Any]:
    d = get_scoped(s, Dataset, dataset_id, who)
    return dataset_view(d, latest_version(s, d.id))


def _mismatch(known: dict[str, Any], seen: dict[str, Any]) -> str | None:
    """Why a new version cannot replace the old one, or None."""
    if known.get("kind") == "images" or seen.get("kind") == "images":
        shape = ("kind", "height", "width", "channels")
        if [known.get(k) for k in shape] != [seen.get(k) for k in shape]:
            return (
                f"images must match the dataset's {[known.get(k) for k in shape]}, "
                f"got {[seen.get(k) for k in shape]}"
            )
        return None
    names = {c["name"] for c in known["columns"]}
    new = {c["name"] for c in seen["columns"]}
    if names != new:
        return (
            "columns differ from the dataset's: "
            f"missing {sorted(names - new)}, unexpected {sorted(new - names)}"
        )
    return None


@router.post(
    "/{dataset_id}/versions",
    status_code=201,
    response_model=VersionCreated,
    operation_id="addDatasetVersion",
)
def add_version(
    request: Request,
    dataset_id: str,
    file: Annotated[UploadFile, File(description="new rows: the whole table, .csv or .parquet")],
    who: Principal = Depends(require(Role.OWNER)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    """A new version of the table; training uses the newest. It must fit the schema."""
    d = live(get_scoped(s, Dataset, dataset_id, who))
    key = dataset_keys(request.app.state.ctx.keys, d.id, d.data_key)[0]
    stored = _store(request, file, key)
    mismatch = _mismatch(d.schema_json, stored.schema)
    if mismatch:
        request.app.state.objects.delete(str(stored.path))
        raise Problem(422, "Schema Mismatch", mismatch)
    latest = latest_version(s, d.id)
    number = (latest.number if latest else 0) + 1
    version = _version(d.id, number, stored)
    s.add(version)
    audit(
        s,
        who,
        "dataset.version",
        project_id=d.project_id,
        target=d.id,
        number=number,
        rows=stored.rows,
    )
    s.commit()
    return {"id": version.id, "dataset_id": d.id, "number": number, "rows": stored.rows}


@router.delete("/{dataset_id}", response_model=DatasetErased, operation_id="eraseDataset")
def erase(
    request: Request,
    dataset_id: str,
    keep_models: bool = Query(
        default=False,
        description="keep its models and releases (DP post-processing of the rows); "
        "false deletes the models and withdraws their releases",
    ),
    who: Principal = Depends(require(Role.OWNER)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    """Erase a dataset for good: its data key is destroyed, so no copy of its encrypted
    files anywhere can be read again, and the files are deleted; its reports are
    deleted (they were computed on its rows), its schedules deleted, and its models
    deleted and releases withdrawn unless ``keep_models``. The ledger and audit log
    keep what was spent and done. 409 while one of its jobs is queued or running."""
    d = get_scoped(s, Dataset, dataset_id, who)
    done = erase_dataset(s, d, who, keep_models=keep_models)
    s.commit()
    objects = request.app.state.objects
    for key in done.objects:  # unreadable already: the data key went with the commit
        objects.delete(key)
    for rid in done.releases_withdrawn:
        request.app.state.release_cards.drop(rid)
    return summary(d, done)


@router.get("/{dataset_id}/budget", response_model=BudgetView, operation_id="getDatasetBudget")
def budget(
    dataset_id: str, who: Principal = Depends(require(*READERS)), s: Session = Depends(session)
) -> dict[str, Any]:
    d = get_scoped(s, Dataset, dataset_id, who)
    entries = s.execute(
        select(LedgerEntry, DatasetVersion.number, Job.state)
        .outerjoin(DatasetVersion, DatasetVersion.id == LedgerEntry.version_id)
        .outerjoin(Job, Job.id == LedgerEntry.job_id)
        .where(LedgerEntry.dataset_id == d.id)
        .order_by(LedgerEntry.id)
    ).all()
    total = s.scalar(
        select(func.coalesce(func.sum(LedgerEntry.epsilon), 0.0)).where(
            LedgerEntry.dataset_id == d.id
        )
    )
    return {
        "dataset_id": d.id,
        "epsilon_budget": d.epsilon_budget,
        "epsilon_spent": d.epsilon_spent,
        "epsilon_remaining": max(d.epsilon_budget - d.epsilon_spent, 0.0),
        "delta": d.delta,
        "delta_spent": d.delta_spent,
        "delta_remaining": max(d.delta - d.delta_spent, 0.0),
        "ledger_total": total,
        "ledger": [
            {
                "id": e.id,
                "job_id": e.job_id,
                "epsilon": e.epsilon,
                "delta": e.delta,
                "reason": e.reason,
                "actor": e.actor,
                "data_version": number,
                "outcome": state,
                "at": iso(e.created_at),
            }
            for e, number, state in entries
        ],
    }

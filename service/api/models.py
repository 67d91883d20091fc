"""Trained models and their reports: owners and auditors only."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api.deps import get_scoped, session
from service.api.pages import Page, PageParams, keyset, page, page_params
from service.api.views import ModelView, binary_responses
from service.db import Model, Release, Role
from service.domain.records import audit, iso
from service.errors import Problem
from service.http.auth import Principal, require

router = APIRouter(prefix="/v1/models", tags=["models"])
READERS = (Role.OWNER, Role.AUDITOR)
MEDIA = {"html": "text/html", "pdf": "application/pdf", "json": "application/json"}


def model_view(m: Model, released: bool | str | None) -> dict[str, Any]:
    return {
        "id": m.id,
        "dataset_id": m.dataset_id,
        "job_id": m.job_id,
        "generator": m.generator,
        "privacy": m.privacy,
        "schema": m.schema_json,
        "gates": m.gates["gates"],
        "passed": m.gates["passed"],
        "released": bool(released),
        "created_at": iso(m.created_at),
    }


@router.get("", response_model=Page[ModelView], operation_id="listModels")
def list_models(
    dataset_id: str | None = Query(default=None, max_length=64, description="only this dataset's"),
    params: PageParams = Depends(page_params),
    who: Principal = Depends(require(*READERS)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    """Trained models of the key's project, oldest first, a page at a time."""
    query = select(Model, Release.id).outerjoin(Release, Release.model_id == Model.id)
    if who.project_id is not None:
        query = query.where(Model.project_id == who.project_id)
    if dataset_id is not None:
        query = query.where(Model.dataset_id == dataset_id)
    rows = list(s.execute(keyset(query, Model.created_at, Model.id, params)))
    return page(rows, params, lambda r: (r[0].created_at, r[0].id), lambda r: model_view(*r))


@router.get("/{model_id}", response_model=ModelView, operation_id="getModel")
def get_model(
    model_id: str, who: Principal = Depends(require(*READERS)), s: Session = Depends(session)
) -> dict[str, Any]:
    m = get_scoped(s, Model, model_id, who)
    released = s.query(Release).filter(Release.model_id == m.id).count() > 0
    return model_view(m, released)


@router.get(
    "/{model_id}/report",
    response_class=FileResponse,
    operation_id="getModelReport",
    responses=binary_responses(MEDIA, "the privacy and quality report (html, pdf or json)"),
)
def get_report(
    request: Request,
    model_id: str,
    format: Literal["html", "pdf", "json"] = "html",
    who: Principal = Depends(require(*READERS)),
    s: Session = Depends(session),
) -> FileResponse:
    m = get_scoped(s, Model, model_id, who)
    if m.report_path is None:
        raise Problem(404, "Not Found", f"model {m.id} has no report")
    path = request.app.state.objects.local_dir(m.report_path) / f"report.{format}"
    if not path.is_file():
        raise Problem(404, "Not Found", f"model {m.id} has no {format} report")
    audit(s, who, "report.read", project_id=m.project_id, target=m.id, format=format)
    s.commit()
    return FileResponse(path, media_type=MEDIA[format], filename=f"sanitas-report-{m.id}.{format}")

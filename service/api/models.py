"""Trained models and their reports: owners and auditors only."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from service.api.deps import get_scoped, session
from service.api.views import ModelView, binary_responses
from service.db import Model, Release, Role
from service.domain.records import audit, iso
from service.errors import Problem
from service.http.auth import Principal, require

router = APIRouter(prefix="/v1/models", tags=["models"])
READERS = (Role.OWNER, Role.AUDITOR)
MEDIA = {"html": "text/html", "pdf": "application/pdf", "json": "application/json"}


def model_view(m: Model, released: bool) -> dict[str, Any]:
    return {
        "id": m.id,
        "dataset_id": m.dataset_id,
        "job_id": m.job_id,
        "generator": m.generator,
        "privacy": m.privacy,
        "schema": m.schema_json,
        "gates": m.gates["gates"],
        "passed": m.gates["passed"],
        "released": released,
        "created_at": iso(m.created_at),
    }


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

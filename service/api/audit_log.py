"""The audit log: every state change and download, for auditors and admins."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api.deps import session
from service.api.views import AuditEventView
from service.db import AuditEvent, Role
from service.domain.records import iso
from service.http.auth import Principal, require

router = APIRouter(prefix="/v1/audit-log", tags=["audit"])


@router.get("", response_model=list[AuditEventView], operation_id="listAuditEvents")
def audit_log(
    limit: int = Query(default=200, ge=1, le=10_000),
    action: str | None = None,
    who: Principal = Depends(require(Role.AUDITOR)),
    s: Session = Depends(session),
) -> list[dict[str, Any]]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if who.project_id is not None:
        query = query.where(AuditEvent.project_id == who.project_id)
    if action:
        query = query.where(AuditEvent.action == action)
    return [
        {
            "id": e.id,
            "at": iso(e.at),
            "actor": e.actor,
            "project_id": e.project_id,
            "action": e.action,
            "target": e.target,
            "detail": e.detail,
        }
        for e in s.scalars(query)
    ]

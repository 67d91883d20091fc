"""The audit log: every state change and download, for auditors and admins."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api.deps import session
from service.api.pages import Page, PageParams, keyset, page, page_params
from service.api.views import AuditEventView
from service.db import AuditEvent, Role
from service.domain.records import iso
from service.http.auth import Principal, require

router = APIRouter(prefix="/v1/audit-log", tags=["audit"])


@router.get("", response_model=Page[AuditEventView], operation_id="listAuditEvents")
def audit_log(
    action: str | None = Query(default=None, max_length=64, description="only this action"),
    target: str | None = Query(default=None, max_length=64, description="only this target id"),
    order: Literal["newest", "oldest"] = Query(default="newest", description="which end first"),
    params: PageParams = Depends(page_params),
    who: Principal = Depends(require(Role.AUDITOR)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    """Events of the key's project (all of them for an admin), a page at a time;
    ``since`` and ``until`` bound the time."""
    query = select(AuditEvent)
    if who.project_id is not None:
        query = query.where(AuditEvent.project_id == who.project_id)
    if action:
        query = query.where(AuditEvent.action == action)
    if target:
        query = query.where(AuditEvent.target == target)
    query = keyset(query, AuditEvent.at, AuditEvent.id, params, newest_first=order == "newest")
    return page(list(s.scalars(query)), params, lambda e: (e.at, e.id), event_view)


def event_view(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": iso(e.at),
        "actor": e.actor,
        "project_id": e.project_id,
        "action": e.action,
        "target": e.target,
        "detail": e.detail,
    }

"""The audit log for auditors: filtered by time, action, actor and target, paged, and
exported (JSON Lines to verify with ``sanitas audit verify``, CSV to read)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from service.console.api_calls import Forwarded
from service.console.common import api_for, render, signed_in
from service.http.console_sessions import SignedIn

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)
PAGE = 100


@router.get("/audit")
async def audit_log(
    request: Request,
    since: str | None = Query(default=None, max_length=40),
    until: str | None = Query(default=None, max_length=40),
    action: str | None = Query(default=None, max_length=64),
    actor: str | None = Query(default=None, max_length=64),
    target: str | None = Query(default=None, max_length=64),
    cursor: str | None = Query(default=None, max_length=200),
    who: SignedIn = Depends(signed_in),
) -> HTMLResponse:
    # times as typed: the API reads them (ISO 8601, UTC when no zone is named)
    filters = {"since": since, "until": until, "action": action, "actor": actor,
               "target": target}  # fmt: skip
    async with api_for(request, who) as api:
        page = await api.get("/v1/audit-log", {**filters, "cursor": cursor, "limit": PAGE})
    shown = {k: v for k, v in filters.items() if v}
    return render(request, "audit.html", who, entries=page["items"], filters=shown,
                  next_cursor=page["next_cursor"])  # fmt: skip


@router.get("/audit/export")
async def export(
    format: str = Query(default="jsonl", max_length=8),
    since: str | None = Query(default=None, max_length=40),
    until: str | None = Query(default=None, max_length=40),
    who: SignedIn = Depends(signed_in),
) -> Response:
    params = [("format", format), ("since", since), ("until", until)]
    return Forwarded(who.principal, "/v1/audit-log/export", params)

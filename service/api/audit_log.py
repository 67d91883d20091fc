"""The audit log: every state change and download, for auditors and admins.

Entries are hash-chained per project (service.audit_chain); the export is what an
auditor files and checks offline with ``sanitas audit verify --file``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from service.api.deps import session
from service.api.pages import Page, PageParams, keyset, moment, page, page_params
from service.api.views import AuditEventView, AuditHeadView, binary_responses
from service.audit_chain import chain_of
from service.csv_safety import inert
from service.db import AuditChain, AuditEvent, Role
from service.domain.records import iso
from service.http.auth import Principal, require

router = APIRouter(prefix="/v1/audit-log", tags=["audit"])

EXPORT_MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv"}
EXPORT_BATCH = 1000
CSV_FIELDS = ("chain", "seq", "at", "actor", "project_id", "action", "target", "detail",
              "prev_hash", "hash")  # fmt: skip


def _scope(who: Principal) -> Any:
    """An auditor reads its project's chain; an admin every chain."""
    return AuditEvent.chain == chain_of(who.project_id) if who.project_id is not None else true()


@router.get("", response_model=Page[AuditEventView], operation_id="listAuditEvents")
def audit_log(
    action: str | None = Query(default=None, max_length=64, description="only this action"),
    target: str | None = Query(default=None, max_length=64, description="only this target id"),
    actor: str | None = Query(
        default=None, max_length=64, description="only this actor (a key id, scheduler, system)"
    ),
    order: Literal["newest", "oldest"] = Query(default="newest", description="which end first"),
    params: PageParams = Depends(page_params),
    who: Principal = Depends(require(Role.AUDITOR)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    """Events of the key's project (all of them for an admin), a page at a time;
    ``since`` and ``until`` bound the time."""
    query = select(AuditEvent).where(_scope(who), AuditEvent.seq.is_not(None))
    if action:
        query = query.where(AuditEvent.action == action)
    if target:
        query = query.where(AuditEvent.target == target)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    query = keyset(query, AuditEvent.at, AuditEvent.id, params, newest_first=order == "newest")
    return page(list(s.scalars(query)), params, lambda e: (e.at, e.id), event_view)


@router.get("/heads", response_model=list[AuditHeadView], operation_id="auditHeads")
def heads(
    who: Principal = Depends(require(Role.AUDITOR)), s: Session = Depends(session)
) -> list[dict[str, Any]]:
    """Each chain's last entry (seq and hash). Write one down now and then (an anchor):
    ``sanitas audit verify --anchor`` later proves nothing up to it was rewritten."""
    query = select(AuditChain).order_by(AuditChain.chain)
    if who.project_id is not None:
        query = query.where(AuditChain.chain == chain_of(who.project_id))
    return [{"chain": c.chain, "seq": c.seq, "hash": c.head} for c in s.scalars(query)]


@router.get(
    "/export",
    response_class=StreamingResponse,
    operation_id="exportAuditLog",
    responses=binary_responses(EXPORT_MEDIA, "the entries, chain by chain in sequence order"),
)
def export(
    request: Request,
    format: Literal["jsonl", "csv"] = Query(default="jsonl", description="jsonl or csv"),
    since: str | None = Query(default=None, max_length=40, description="from (ISO 8601)"),
    until: str | None = Query(default=None, max_length=40, description="before (ISO 8601)"),
    who: Principal = Depends(require(Role.AUDITOR)),
) -> StreamingResponse:
    """Every entry of the key's chains with their hashes: JSON Lines (what ``sanitas
    audit verify --file`` checks) or CSV for spreadsheets (cells that would run as
    formulas start with a quote, so CSV is for reading, JSON Lines for checking).

    ``since``/``until`` pick, in each chain, the unbroken run of entries from the first
    written at or after ``since`` to the last written before ``until``: a chain is
    ordered by commit, an entry's time is when its request began, so near the edges a
    few entries may lie just outside the times asked for; none inside is left out."""
    start, end = moment("since", since), moment("until", until)
    rows = _entries(request.app.state.sessions, who, start, end)
    body = (json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return StreamingResponse(
        body if format == "jsonl" else _csv(rows),
        media_type=EXPORT_MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="sanitas-audit.{format}"'},
    )


def _bounds(s: Session, who: Principal, start: Any, end: Any) -> dict[str, tuple[int, int]]:
    """chain -> (first seq, last seq) of the entries inside the times."""
    query = select(AuditEvent.chain, func.min(AuditEvent.seq), func.max(AuditEvent.seq))
    query = query.where(_scope(who), AuditEvent.seq.is_not(None))
    if start is not None:
        query = query.where(AuditEvent.at >= start)
    if end is not None:
        query = query.where(AuditEvent.at < end)
    return {c: (lo, hi) for c, lo, hi in s.execute(query.group_by(AuditEvent.chain))}


def _entries(sessions: Any, who: Principal, start: Any, end: Any) -> Iterator[dict[str, Any]]:
    """A batch at a time, each in a short session of its own (a stream may be slow)."""
    with sessions() as s:
        spans = _bounds(s, who, start, end)
    for chain, (first, last) in sorted(spans.items()):
        after = first - 1
        while after < last:
            with sessions() as s:
                batch = list(s.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.chain == chain, AuditEvent.seq > after,
                           AuditEvent.seq <= last)
                    .order_by(AuditEvent.seq).limit(EXPORT_BATCH)
                ))  # fmt: skip
            if not batch:
                return
            yield from (chained_view(e) for e in batch)
            after = batch[-1].seq or last


def _csv(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    for row in rows:
        row = {**row, "detail": json.dumps(row["detail"], ensure_ascii=False)}
        writer.writerow(
            inert(v) if isinstance(v, str) else ("" if v is None else v)
            for v in (row[f] for f in CSV_FIELDS)
        )
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def event_view(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": iso(e.at),
        "actor": e.actor,
        "project_id": e.project_id,
        "action": e.action,
        "target": e.target,
        "detail": e.detail,
        "chain": e.chain,
        "seq": e.seq,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    }


def chained_view(e: AuditEvent) -> dict[str, Any]:
    """An entry as exported: every field its hash covers, and the hashes."""
    view = event_view(e)
    view.pop("id")
    return view

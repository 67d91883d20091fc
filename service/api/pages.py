"""Cursor pagination for every list route: stable under inserts, cheap at any depth.

A page is ordered by (created_at, id); its cursor is the last row's pair, opaque to
clients (base64 of JSON). The next page starts strictly after it, so rows made while a
client pages through never shift what it has seen (an offset would skip or repeat
them), and the database seeks by index instead of counting past every earlier row.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from service.db import aware
from service.errors import Problem

__all__ = ["Page", "PageParams", "keyset", "moment", "page", "page_params"]

ItemT = TypeVar("ItemT")
MAX_LIMIT = 1000


class Page(BaseModel, Generic[ItemT]):
    """One page of a list; ``next_cursor`` is null on the last one."""

    model_config = ConfigDict(extra="forbid")
    items: list[ItemT]
    next_cursor: str | None


class PageParams(BaseModel):
    """The page's query as sent; read by ``keyset`` (inside the route, so that a bad
    cursor or time is refused only after the key was checked)."""

    limit: int
    cursor: str | None
    since: str | None
    until: str | None


def page_params(
    limit: int = Query(default=100, ge=1, le=MAX_LIMIT, description="rows per page"),
    cursor: str | None = Query(
        default=None, max_length=200, description="next_cursor of the previous page"
    ),
    since: str | None = Query(
        default=None, max_length=40, description="created at or after (ISO 8601)",
        json_schema_extra={"format": "date-time"},
    ),
    until: str | None = Query(
        default=None, max_length=40, description="created before (ISO 8601)",
        json_schema_extra={"format": "date-time"},
    ),
) -> PageParams:  # fmt: skip
    return PageParams(limit=limit, cursor=cursor, since=since, until=until)


def moment(name: str, value: str | None) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone); a number or other text is a 422,
    not a Unix time read by accident."""
    if value is None:
        return None
    try:
        return aware(datetime.fromisoformat(value))
    except ValueError:
        raise Problem(
            422, "Invalid Time", f"{name}={value!r} is not an ISO 8601 time (2026-12-06T10:00Z)"
        ) from None


def _decode(cursor: str) -> tuple[datetime, str | int]:
    try:
        at, ident = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(ident, str | int):
            raise TypeError(ident)
        return aware(datetime.fromisoformat(at)), ident
    except (ValueError, TypeError, binascii.Error):
        raise Problem(
            422, "Invalid Cursor", "cursor is not a next_cursor this API gave; start without one"
        ) from None


def _encode(at: datetime, ident: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([aware(at).isoformat(), ident]).encode()).decode()


def keyset(
    query: Select[Any],
    created: InstrumentedAttribute[datetime],
    ident: InstrumentedAttribute[Any],
    params: PageParams,
    *,
    newest_first: bool = False,
) -> Select[Any]:
    """``query`` restricted to one page (and one row more, to know there is a next)."""
    if (since := moment("since", params.since)) is not None:
        query = query.where(created >= since)
    if (until := moment("until", params.until)) is not None:
        query = query.where(created < until)
    if params.cursor is not None:
        at, last = _decode(params.cursor)
        if newest_first:
            query = query.where(or_(created < at, and_(created == at, ident < last)))
        else:
            query = query.where(or_(created > at, and_(created == at, ident > last)))
    order = (created.desc(), ident.desc()) if newest_first else (created, ident)
    return query.order_by(*order).limit(params.limit + 1)


def page(rows: list[Any], params: PageParams, key: Any, view: Any) -> dict[str, Any]:
    """The page body: ``view`` of each row, and the cursor after the last when more
    rows follow (``key`` gives a row's (created_at, id))."""
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    return {
        "items": [view(row) for row in rows],
        "next_cursor": _encode(*key(rows[-1])) if more else None,
    }

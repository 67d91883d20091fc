"""The release catalogue: cards, a preview of a few synthetic rows and the download
builder (the link, the curl line and the Python client line); withdrawal for owners."""

from __future__ import annotations

import json
import shlex
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.console.api_calls import ApiError, Forwarded
from service.console.common import api_for, checked_form, render, seg, signed_in
from service.console.forms import text
from service.http.console_sessions import SignedIn

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)
PREVIEW_ROWS = 5
TABLE_FORMATS = ("csv", "jsonl", "parquet")
IMAGE_FORMATS = ("npz", "zip")


@router.get("/releases")
async def catalogue(request: Request, who: SignedIn = Depends(signed_in)) -> HTMLResponse:
    async with api_for(request, who) as api:
        page = await api.get("/v1/releases", {"limit": 200})
    return render(request, "releases.html", who, releases=page["items"])


def _wheres(lines: str) -> list[str]:
    return [line.strip() for line in lines.splitlines() if line.strip()][:20]


def _builder(
    request: Request, card: dict[str, Any], n: int, fmt: str, seed: int | None, wheres: list[str]
) -> dict[str, Any]:
    """The three ways to fetch the same rows."""
    query = [("n", n), ("format", fmt), *([("seed", seed)] if seed is not None else []),
             *(("where", w) for w in wheres)]  # fmt: skip
    base = str(request.base_url).rstrip("/")
    api_url = f"{base}/v1/releases/{seg(card['id'])}/samples?{urlencode(query)}"
    where = dict(w.split(":", 1) for w in wheres if ":" in w)
    args = [repr(card["id"]), f"n={n}", *([f"seed={seed}"] if seed is not None else []),
            *([f"where={where!r}"] if where else [])]  # fmt: skip
    return {
        "link": f"/console/releases/{seg(card['id'])}/download?{urlencode(query)}",
        "curl": f'curl -fH "Authorization: Bearer $SANITAS_KEY" -o sanitas.{fmt} '
        f"{shlex.quote(api_url)}",
        "python": f"from service.client import Client\n"
        f"rows = Client({base!r}, key).samples({', '.join(args)})",
    }


async def _preview(api: Any, card: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """A few synthetic rows (an audited download of PREVIEW_ROWS rows, like any other)."""
    if card["kind"] != "table" or card.get("withdrawn_at"):
        return [], None
    try:
        answer = await api.get(f"/v1/releases/{seg(card['id'])}/samples",
                               {"n": PREVIEW_ROWS, "format": "jsonl", "seed": 0})  # fmt: skip
    except ApiError as e:
        return [], e.detail
    return [json.loads(line) for line in answer.text.splitlines() if line.strip()], None


@router.get("/releases/{release_id}")
async def release_page(
    request: Request,
    release_id: str,
    n: int = Query(default=1000, ge=1),
    format: str = Query(default="csv", max_length=10),
    seed: int | None = Query(default=None, ge=0),
    where: str = Query(default="", max_length=4000),
    who: SignedIn = Depends(signed_in),
) -> HTMLResponse:
    async with api_for(request, who) as api:
        card = await api.get(f"/v1/releases/{seg(release_id)}")
        rows, preview_error = (
            await _preview(api, card) if who.role.value != "auditor" else ([], None)
        )
    formats = TABLE_FORMATS if card["kind"] == "table" else IMAGE_FORMATS
    fmt = format if format in formats else formats[0]
    return render(
        request, "release.html", who, card=card, rows=rows, preview_error=preview_error,
        formats=formats, n=n, fmt=fmt, seed=seed, where=where,
        builder=_builder(request, card, n, fmt, seed, _wheres(where)),
    )  # fmt: skip


@router.get("/releases/{release_id}/download")
async def download(
    release_id: str,
    n: int = Query(ge=1),
    format: str = Query(default="csv", max_length=10),
    seed: int | None = Query(default=None, ge=0),
    where: list[str] = Query(default=[]),
    who: SignedIn = Depends(signed_in),
) -> Response:
    """The API's own download, streamed to the browser as the signed-in key (audited by
    the API when the stream ends, as any download)."""
    params = [("n", n), ("format", format), ("seed", seed), *(("where", w) for w in where)]
    return Forwarded(who.principal, f"/v1/releases/{seg(release_id)}/samples", params)


@router.post("/releases/{release_id}/withdraw")
async def withdraw(
    request: Request, release_id: str, who: SignedIn = Depends(signed_in)
) -> Response:
    form = await checked_form(request, who)
    async with api_for(request, who) as api:
        await api.post(f"/v1/releases/{seg(release_id)}/withdraw", {"reason": text(form, "reason")})
    return RedirectResponse(f"/console/releases/{seg(release_id)}", status_code=303)

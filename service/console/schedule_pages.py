"""Schedules: each with its next run and its runs and skips; create, pause, resume,
delete."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.console.api_calls import ApiError
from service.console.common import api_for, checked_form, render, seg, signed_in
from service.console.forms import job_options, text
from service.http.console_sessions import SignedIn

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)
ACTIONS = {"pause": "paused", "resume": "active"}


@router.get("/schedules")
async def schedules(request: Request, who: SignedIn = Depends(signed_in)) -> HTMLResponse:
    async with api_for(request, who) as api:
        page, datasets = await asyncio.gather(
            api.get("/v1/schedules", {"limit": 200}), api.get("/v1/datasets", {"limit": 200})
        )
    return render(request, "schedules.html", who, schedules=page["items"],
                  datasets=datasets["items"])  # fmt: skip


@router.post("/schedules")
async def create(request: Request, who: SignedIn = Depends(signed_in)) -> Response:
    form = await checked_form(request, who)
    body = {
        "dataset_id": text(form, "dataset_id"), "cron": text(form, "cron"),
        "job": job_options(form), "auto_release": text(form, "auto_release") == "on",
    }  # fmt: skip
    async with api_for(request, who) as api:
        await api.call("POST", "/v1/schedules", json=body)
    return RedirectResponse("/console/schedules", status_code=303)


@router.post("/schedules/{schedule_id}/{action}")
async def change(
    request: Request, schedule_id: str, action: str, who: SignedIn = Depends(signed_in)
) -> Response:
    await checked_form(request, who)
    path = f"/v1/schedules/{seg(schedule_id)}"
    async with api_for(request, who) as api:
        if action == "delete":
            await api.call("DELETE", path)
        elif action in ACTIONS:
            await api.call("PATCH", path, json={"state": ACTIONS[action]})
        else:
            raise ApiError(404, "Not Found", f"no schedule action {action[:40]!r}")
    return RedirectResponse("/console/schedules", status_code=303)

"""Datasets, schema, budget, jobs, models and the release decision: owners act, auditors
read (the API decides which; the pages only hide buttons a role cannot use)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from service.console.api_calls import ApiError
from service.console.charts import budget_chart
from service.console.common import api_for, checked_form, render, seg, signed_in
from service.console.forms import column_patch, job_options
from service.http.console_sessions import SignedIn
from training.registry import names as generator_names

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)
FINISHED = ("succeeded", "failed", "cancelled")


@router.get("/datasets")
async def datasets(request: Request, who: SignedIn = Depends(signed_in)) -> HTMLResponse:
    async with api_for(request, who) as api:
        page = await api.get("/v1/datasets", {"limit": 200})
    return render(request, "datasets.html", who, datasets=page["items"], error=None)


def _file_part(form: FormData, missing: str) -> dict[str, Any]:
    """The form's file as the API's multipart field, read from the spooled upload as it is
    sent (not held in memory a second time)."""
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        raise ApiError(422, "No File", missing)
    return {"file": (file.filename, file.file, file.content_type)}


@router.post("/datasets")
async def upload(request: Request, who: SignedIn = Depends(signed_in)) -> Response:
    form = await checked_form(request, who)
    rows = _file_part(form, "choose a table (.csv, .parquet) or images to upload")
    fields = {k: str(form.get(k) or "") for k in ("name", "epsilon_budget", "delta")}
    async with api_for(request, who) as api:
        made = await api.call("POST", "/v1/datasets", files=rows,
                              data={k: v for k, v in fields.items() if v})  # fmt: skip
    return RedirectResponse(f"/console/datasets/{seg(made['id'])}", status_code=303)


@router.post("/datasets/{dataset_id}/versions")
async def new_version(
    request: Request, dataset_id: str, who: SignedIn = Depends(signed_in)
) -> Response:
    """A new version of the table (the same columns; the budget and ledger carry on)."""
    form = await checked_form(request, who)
    rows = _file_part(form, "choose the table's new version to upload")
    async with api_for(request, who) as api:
        await api.call("POST", f"/v1/datasets/{seg(dataset_id)}/versions", files=rows)
    return RedirectResponse(f"/console/datasets/{seg(dataset_id)}", status_code=303)


@router.get("/datasets/{dataset_id}")
async def dataset(
    request: Request, dataset_id: str, who: SignedIn = Depends(signed_in)
) -> HTMLResponse:
    ident = seg(dataset_id)
    async with api_for(request, who) as api:
        shown, budget, jobs = await asyncio.gather(
            api.get(f"/v1/datasets/{ident}"),
            api.get(f"/v1/datasets/{ident}/budget"),
            api.get("/v1/jobs", {"dataset_id": dataset_id, "limit": 1000}),
        )
    return render(
        request, "dataset.html", who, dataset=shown, budget=budget, jobs=jobs["items"],
        chart=budget_chart(budget["ledger"], budget["epsilon_budget"]),
        generators=generator_names(shown["kind"]),
    )  # fmt: skip


@router.post("/datasets/{dataset_id}/schema")
async def declare_column(
    request: Request, dataset_id: str, who: SignedIn = Depends(signed_in)
) -> Response:
    form = await checked_form(request, who)
    async with api_for(request, who) as api:
        await api.call("PATCH", f"/v1/datasets/{seg(dataset_id)}/schema",
                       json={"columns": [column_patch(form)]})  # fmt: skip
    return RedirectResponse(f"/console/datasets/{seg(dataset_id)}#schema", status_code=303)


@router.post("/jobs")
async def start_job(request: Request, who: SignedIn = Depends(signed_in)) -> Response:
    form = await checked_form(request, who)
    body = {"dataset_id": str(form.get("dataset_id") or ""), **job_options(form)}
    async with api_for(request, who) as api:
        job = await api.call("POST", "/v1/jobs", json=body)
    return RedirectResponse(f"/console/jobs/{seg(job['id'])}", status_code=303)


@router.get("/jobs")
async def jobs(
    request: Request, state: str | None = None, who: SignedIn = Depends(signed_in)
) -> HTMLResponse:
    async with api_for(request, who) as api:
        page = await api.get("/v1/jobs", {"state": state, "limit": 1000})
    return render(request, "jobs.html", who, jobs=page["items"], state=state)


async def _job_and_model(request: Request, who: SignedIn, job_id: str) -> dict[str, Any]:
    async with api_for(request, who) as api:
        job = await api.get(f"/v1/jobs/{seg(job_id)}")
        model = await api.get(f"/v1/models/{seg(job['model_id'])}") if job["model_id"] else None
    return {"job": job, "model": model}


@router.get("/jobs/{job_id}")
async def job_page(request: Request, job_id: str, who: SignedIn = Depends(signed_in)) -> Response:
    found = await _job_and_model(request, who, job_id)
    return render(request, "job.html", who, finished=FINISHED, **found)


@router.get("/jobs/{job_id}/progress")
async def job_progress(
    request: Request, job_id: str, who: SignedIn = Depends(signed_in)
) -> Response:
    """The live part of a job's page; once the job ends, the whole page reloads."""
    found = await _job_and_model(request, who, job_id)
    answer = render(request, "job_progress.html", who, finished=FINISHED, **found)
    if found["job"]["state"] in FINISHED:
        answer.headers["HX-Refresh"] = "true"
    return answer


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(request: Request, job_id: str, who: SignedIn = Depends(signed_in)) -> Response:
    await checked_form(request, who)
    async with api_for(request, who) as api:
        await api.post(f"/v1/jobs/{seg(job_id)}/cancel")
    return RedirectResponse(f"/console/jobs/{seg(job_id)}", status_code=303)


@router.get("/models/{model_id}/report")
async def report_frame(
    request: Request, model_id: str, who: SignedIn = Depends(signed_in)
) -> HTMLResponse:
    """The report's HTML, shown in a sandboxed frame of the job page (its own CSP: no
    script, images inline only; only the console may frame it)."""
    async with api_for(request, who) as api:
        answer = await api.get(f"/v1/models/{seg(model_id)}/report", {"format": "html"})
    return HTMLResponse(answer.text)


@router.post("/releases")
async def release(request: Request, who: SignedIn = Depends(signed_in)) -> Response:
    form = await checked_form(request, who)
    body: dict[str, Any] = {"model_id": str(form.get("model_id") or "")}
    for field in ("name", "description", "override_reason"):
        if value := str(form.get(field) or "").strip():
            body[field] = value
    async with api_for(request, who) as api:
        made = await api.call("POST", "/v1/releases", json=body)
    return RedirectResponse(f"/console/releases/{seg(made['id'])}", status_code=303)

"""Training jobs: reserve the budget, queue, watch, cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api.deps import get_scoped, session
from service.api.pages import Page, PageParams, keyset, page, page_params
from service.api.views import JobView
from service.db import Dataset, Job, JobState, Role
from service.domain.jobs import JobRequest, enqueue
from service.domain.records import audit, iso
from service.errors import Problem
from service.http.auth import Principal, require
from service.http.idempotency import Idempotency, idempotency

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def job_view(j: Job) -> dict[str, Any]:
    return {
        "id": j.id,
        "state": j.state,
        "progress": j.progress,
        "dataset_id": j.dataset_id,
        "epsilon": j.epsilon,
        "spec": j.spec,
        "model_id": j.model_id,
        "error": j.error,
        "log": j.log.splitlines()[-50:],
        "touched_data": j.touched_data,
        "worker": j.worker,
        "created_at": iso(j.created_at),
        "finished_at": iso(j.finished_at),
    }


@router.post("", status_code=202, response_model=JobView, operation_id="createJob")
def create_job(
    request: Request,
    body: JobRequest,
    who: Principal = Depends(require(Role.OWNER)),
    s: Session = Depends(session),
    once: Idempotency = Depends(idempotency),
) -> dict[str, Any]:
    """Reserve the job's epsilon and delta and queue it; with an ``Idempotency-Key`` a
    retry is answered this job again and charged nothing more."""
    dataset = get_scoped(s, Dataset, body.dataset_id, who)
    once.replay(s, who.key_id)
    job = enqueue(s, dataset, body, who.key_id, min_rows=request.app.state.settings.min_job_rows)
    audit(s, who, "job.create", project_id=job.project_id, target=job.id, epsilon=body.epsilon)
    s.flush()  # column defaults (log, created_at) filled in for the stored answer
    view = job_view(job)
    once.commit(s, who.key_id, 202, view)
    request.app.state.runner.submit(job.id)
    return view


@router.get("", response_model=Page[JobView], operation_id="listJobs")
def list_jobs(
    state: JobState | None = Query(default=None, description="only jobs in this state"),
    dataset_id: str | None = Query(default=None, max_length=64, description="only this dataset's"),
    params: PageParams = Depends(page_params),
    who: Principal = Depends(require(Role.OWNER, Role.AUDITOR)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    """Jobs of the key's project, oldest first, a page at a time."""
    query = select(Job)
    if who.project_id is not None:
        query = query.where(Job.project_id == who.project_id)
    if state is not None:
        query = query.where(Job.state == state)
    if dataset_id is not None:
        query = query.where(Job.dataset_id == dataset_id)
    rows = list(s.scalars(keyset(query, Job.created_at, Job.id, params)))
    return page(rows, params, lambda j: (j.created_at, j.id), job_view)


@router.get("/{job_id}", response_model=JobView, operation_id="getJob")
def get_job(
    job_id: str,
    who: Principal = Depends(require(Role.OWNER, Role.AUDITOR)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    return job_view(get_scoped(s, Job, job_id, who))


@router.post("/{job_id}/cancel", status_code=202, response_model=JobView, operation_id="cancelJob")
def cancel_job(
    job_id: str, who: Principal = Depends(require(Role.OWNER)), s: Session = Depends(session)
) -> dict[str, Any]:
    from service.jobs.runner import finish

    job = get_scoped(s, Job, job_id, who)
    if job.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
        raise Problem(409, "Job Finished", f"job {job.id} is already {job.state}")
    job.cancel_requested = True
    audit(s, who, "job.cancel", project_id=job.project_id, target=job.id)
    if job.state == JobState.QUEUED:
        finish(s, job, JobState.CANCELLED, error="cancelled before it started")
    s.commit()
    return job_view(job)

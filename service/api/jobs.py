"""Training jobs: reserve the budget, queue, watch, cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from service.api.deps import get_scoped, session
from service.api.views import JobView
from service.db import Dataset, Job, JobState, Role
from service.domain.jobs import JobRequest, enqueue
from service.domain.records import audit, iso
from service.errors import Problem
from service.http.auth import Principal, require

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
) -> dict[str, Any]:
    dataset = get_scoped(s, Dataset, body.dataset_id, who)
    job = enqueue(s, dataset, body, who.key_id)
    audit(s, who, "job.create", project_id=job.project_id, target=job.id, epsilon=body.epsilon)
    s.commit()
    request.app.state.runner.submit(job.id)
    return job_view(job)


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

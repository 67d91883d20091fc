"""Training jobs: reserve the budget, queue, watch, cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ValidationError, model_validator
from sqlalchemy.orm import Session

from service.api.datasets import latest_version
from service.api.deps import audit, get_scoped, iso, new_id, session
from service.auth import Principal, require
from service.budget import charge
from service.db import Dataset, Job, JobState, Role
from service.problems import Problem
from training import registry
from training.spec import DEFAULT_DELTA, Delta, DPConfig, Epochs, Epsilon, GeneratorName, Share

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


class JobOptionsRequest(BaseModel):
    """What a job asks, without its dataset: the body of a job and of a schedule's job,
    one model so that a schedule accepts exactly what a job accepts."""

    # None: the registry's default for the dataset's modality
    generator: GeneratorName | None = None
    epsilon: Epsilon
    # None: a tenth of the dataset's delta budget, so ten jobs fit (deltas add up)
    delta: Delta | None = None
    epochs: Epochs | None = None
    # tables: share of epsilon spent on measured marginals after training; None: 0.7
    calibration_share: Share | None = None
    target_column: str | None = None
    audit: bool = False
    # images: the report shows the synthetic images closest to real training images
    # beside those real images (owners and auditors only); false leaves them out
    report_real_images: bool = True

    @model_validator(mode="after")
    def _child_accepts_the_privacy(self) -> JobOptionsRequest:
        """The privacy settings as the job's child builds them (its shares' sum too)."""
        share = self.calibration_share
        try:
            DPConfig(
                epsilon=self.epsilon, delta=self.delta or DEFAULT_DELTA,
                **({} if share is None else {"calibration_share": share}),
            )  # fmt: skip
        except ValidationError as e:
            raise ValueError("; ".join(err["msg"] for err in e.errors())) from None
        return self


class JobRequest(JobOptionsRequest):
    dataset_id: str


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


JOBS_PER_DELTA = 10


def default_job_delta(delta_budget: float) -> float:
    """A job's delta when the request names none: a tenth of the dataset's budget (the
    deltas of its jobs add up; DPConfig takes at most 0.01)."""
    return min(float(f"{delta_budget / JOBS_PER_DELTA:.6g}"), 0.0099)


def enqueue(s: Session, dataset: Dataset, body: JobRequest, actor: str) -> Job:
    """Charge the budget and queue the job in one transaction (the caller commits)."""
    version = latest_version(s, dataset.id)
    if version is None:
        raise Problem(409, "No Data", f"dataset {dataset.id} has no version to train on")
    images = dataset.kind == "images"
    generator = body.generator or registry.default_generator(dataset.kind)
    if dataset.kind != registry.modality_of(generator):
        raise Problem(
            422,
            "Generator Does Not Fit",
            f"dataset {dataset.id} holds {'images' if images else 'a table'} and generator "
            f"{generator!r} trains on {'images' if not images else 'tables'}",
        )
    if images and body.target_column is not None:
        raise Problem(422, "Unknown Column", "an image dataset has no target_column")
    delta = body.delta if body.delta is not None else default_job_delta(dataset.delta)
    if delta > dataset.delta:
        raise Problem(
            422, "Delta Too Large", f"delta {delta} exceeds the dataset's {dataset.delta}"
        )
    columns = {c["name"] for c in dataset.schema_json["columns"]}
    if body.target_column is not None and body.target_column not in columns:
        raise Problem(
            422, "Unknown Column", f"target_column {body.target_column!r} is not a column"
        )
    job = Job(
        id=new_id(),
        project_id=dataset.project_id,
        dataset_id=dataset.id,
        version_id=version.id,
        spec={**body.model_dump(), "generator": generator, "delta": delta},
        epsilon=body.epsilon,
        created_by=actor,
        state=JobState.QUEUED,
    )
    charge(s, dataset, body.epsilon, delta, job_id=job.id, reason=f"job {job.id} ({generator})")
    s.add(job)
    return job


@router.post("", status_code=202)
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


@router.get("/{job_id}")
def get_job(
    job_id: str,
    who: Principal = Depends(require(Role.OWNER, Role.AUDITOR)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    return job_view(get_scoped(s, Job, job_id, who))


@router.post("/{job_id}/cancel", status_code=202)
def cancel_job(
    job_id: str, who: Principal = Depends(require(Role.OWNER)), s: Session = Depends(session)
) -> dict[str, Any]:
    from service.runner import finish

    job = get_scoped(s, Job, job_id, who)
    if job.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
        raise Problem(409, "Job Finished", f"job {job.id} is already {job.state}")
    job.cancel_requested = True
    audit(s, who, "job.cancel", project_id=job.project_id, target=job.id)
    if job.state == JobState.QUEUED:
        finish(s, job, JobState.CANCELLED, error="cancelled before it started")
    s.commit()
    return job_view(job)

"""Jobs in the domain: what a job may ask, and queueing one against the budget.

The request models' bounds are ``training.spec``'s own types, and the privacy
settings are checked by building the ``DPConfig`` the job's child will build: nothing
the API accepts can fail validation after the budget was charged.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from sqlalchemy.orm import Session

from service.db import Dataset, DatasetVersion, Job, JobState
from service.domain.budget import charge
from service.domain.datasets import latest_version, live
from service.domain.records import new_id
from service.errors import Problem
from training import registry
from training.spec import DEFAULT_DELTA, Delta, DPConfig, Epochs, Epsilon, GeneratorName, Share

__all__ = ["JobOptionsRequest", "JobRequest", "default_job_delta", "enqueue"]


class JobOptionsRequest(BaseModel):
    """What a job asks, without its dataset: the body of a job and of a schedule's job,
    one model so that a schedule accepts exactly what a job accepts."""

    model_config = ConfigDict(extra="forbid")  # a typo'd field is a 422, never a default

    # None: the registry's default for the dataset's modality
    generator: GeneratorName | None = None
    epsilon: Epsilon
    # None: a tenth of the dataset's delta budget, so ten jobs fit (deltas add up)
    delta: Delta | None = None
    epochs: Epochs | None = None
    # tables: share of epsilon spent on measured marginals after training; None: by the
    # planner's rule from the schema (training.budget.shares)
    calibration_share: Share | None = None
    target_column: str | None = None
    audit: bool = False
    # images: the report shows the synthetic images closest to real training images
    # beside those real images (owners and auditors only); false leaves them out
    report_real_images: bool = True

    @model_validator(mode="after")
    def _child_accepts_the_privacy(self) -> JobOptionsRequest:
        """The privacy settings as the job's child builds them (its shares' sum too)."""
        try:
            DPConfig.requested(
                epsilon=self.epsilon, delta=self.delta or DEFAULT_DELTA,
                calibration_share=self.calibration_share,
            )  # fmt: skip
        except ValidationError as e:
            raise ValueError("; ".join(err["msg"] for err in e.errors())) from None
        return self


class JobRequest(JobOptionsRequest):
    dataset_id: str


JOBS_PER_DELTA = 10


def default_job_delta(delta_budget: float) -> float:
    """A job's delta when the request names none: a tenth of the dataset's budget (the
    deltas of its jobs add up; DPConfig takes at most 0.01)."""
    return min(float(f"{delta_budget / JOBS_PER_DELTA:.6g}"), 0.0099)


def enough_rows(dataset: Dataset, version: DatasetVersion, min_rows: int) -> None:
    """422 for a table too small to evaluate, before anything is charged: a fifth of it is
    held out, and on fewer rows the memorization and utility checks cannot run (MASS
    birthwt, 189 rows) or measure nothing, so its model could never pass the gates."""
    if dataset.kind == "table" and version.rows < min_rows:
        raise Problem(
            422, "Too Few Rows",
            f"dataset {dataset.id} version {version.number} has {version.rows:,} rows; a job "
            f"needs at least {min_rows:,}: a fifth is held out to check the model for "
            "memorization and fidelity, and smaller checks cannot run. Add rows with a new "
            "version (POST /v1/datasets/{id}/versions).",
            rows=version.rows, min_rows=min_rows,
        )  # fmt: skip


def enqueue(s: Session, dataset: Dataset, body: JobRequest, actor: str, *, min_rows: int) -> Job:
    """Charge the budget and queue the job in one transaction (the caller commits)."""
    live(dataset)
    version = latest_version(s, dataset.id)
    if version is None:
        raise Problem(409, "No Data", f"dataset {dataset.id} has no version to train on")
    enough_rows(dataset, version, min_rows)
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
    charge(
        s, dataset, body.epsilon, delta, job_id=job.id, reason=f"job {job.id} ({generator})",
        actor=actor, version_id=version.id,
    )  # fmt: skip
    s.add(job)
    return job

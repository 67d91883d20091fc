"""Scheduled retraining: a cron expression and the job to run on the newest version.

A schedule is active, paused or deleted. Creating or editing one is refused when a
single run would not fit the dataset's remaining budget; a run skipped for budget
pauses its schedule with the reason, so nothing keeps logging skips every few minutes.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api.deps import get_scoped, session
from service.api.pages import Page, PageParams, keyset, page, page_params
from service.api.views import ScheduleView
from service.db import Dataset, Role, Schedule, ScheduleRun, aware, now
from service.domain.budget import SLACK
from service.domain.datasets import live
from service.domain.jobs import JobOptionsRequest, default_job_delta
from service.domain.records import audit, iso, new_id
from service.errors import Problem
from service.http.auth import Principal, require
from service.http.idempotency import Idempotency, idempotency

MIN_INTERVAL = timedelta(minutes=10)
RUNS_SHOWN = 20
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])


def checked_cron(value: str) -> str:
    """The five-field form of ``value`` (macros such as ``@daily`` expanded), or
    ValueError when it is no cron expression or fires more often than MIN_INTERVAL."""
    from croniter import croniter

    value = MACROS.get(value.strip().lower(), value.strip())
    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError(
            f"{value!r} is not a cron expression (minute hour day month weekday, or one of "
            f"{', '.join(MACROS)})"
        )
    first = croniter(value, datetime(2026, 1, 1, tzinfo=UTC))
    gap = min(
        (b - a for a, b in itertools.pairwise(first.get_next(datetime) for _ in range(50))),
        default=MIN_INTERVAL,
    )
    if gap < MIN_INTERVAL:
        raise ValueError(
            f"{value!r} fires every {gap.total_seconds() / 60:g} minutes; each retrain "
            f"spends budget: at most once per {MIN_INTERVAL.total_seconds() / 60:g} minutes"
        )
    return value


class ScheduleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo'd field is a 422, never a default
    dataset_id: str
    cron: str
    job: JobOptionsRequest  # what POST /v1/jobs takes, less the dataset
    auto_release: bool = False

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        return checked_cron(value)


class SchedulePatch(BaseModel):
    """What an owner may change; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")
    cron: str | None = None
    job: JobOptionsRequest | None = None
    auto_release: bool | None = None
    state: Literal["active", "paused"] | None = None

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        return None if value is None else checked_cron(value)


def next_run_at(sch: Schedule, at: datetime | None = None) -> datetime | None:
    """When an active schedule fires next (None when paused or deleted)."""
    from croniter import croniter

    if sch.state != "active":
        return None
    start = max(at or now(), aware(sch.fires_after or sch.created_at))
    return croniter(sch.cron, start).get_next(datetime)  # type: ignore[no-any-return]


def schedule_view(sch: Schedule, runs: list[ScheduleRun]) -> dict[str, Any]:
    return {
        "id": sch.id,
        "dataset_id": sch.dataset_id,
        "cron": sch.cron,
        "job": sch.job,
        "auto_release": sch.auto_release,
        "state": sch.state,
        "state_reason": sch.state_reason,
        "next_run_at": iso(next_run_at(sch)),
        "created_at": iso(sch.created_at),
        "runs": [
            {"fire_time": iso(r.fire_time), "job_id": r.job_id, "skipped_reason": r.skipped_reason}
            for r in runs
        ],
    }


def _recent_runs(s: Session, schedule_id: str) -> list[ScheduleRun]:
    """The last RUNS_SHOWN runs, oldest first."""
    newest = s.scalars(
        select(ScheduleRun)
        .where(ScheduleRun.schedule_id == schedule_id)
        .order_by(ScheduleRun.fire_time.desc())
        .limit(RUNS_SHOWN)
    ).all()
    return list(reversed(newest))


def _one_run_fits(dataset: Dataset, job: dict[str, Any]) -> None:
    """409 when a single run of the schedule would not fit what the dataset has left:
    such a schedule could only ever skip."""
    epsilon = float(job["epsilon"])
    delta = job.get("delta") or default_job_delta(dataset.delta)
    remaining = max(dataset.epsilon_budget - dataset.epsilon_spent, 0.0)
    delta_remaining = max(dataset.delta - dataset.delta_spent, 0.0)
    if epsilon > remaining + SLACK or delta > delta_remaining * (1 + SLACK):
        raise Problem(
            409,
            "Budget Exceeded",
            f"one run of this schedule asks epsilon {epsilon:g} (delta {delta:.3g}); dataset "
            f"{dataset.id} has epsilon {remaining:.6g} (delta {delta_remaining:.3g}) left",
            epsilon_remaining=remaining,
            delta_remaining=delta_remaining,
        )


@router.post("", status_code=201, response_model=ScheduleView, operation_id="createSchedule")
def create_schedule(
    body: ScheduleRequest,
    who: Principal = Depends(require(Role.OWNER)),
    s: Session = Depends(session),
    once: Idempotency = Depends(idempotency),
) -> dict[str, Any]:
    """Retrain on the dataset's newest version at each fire time of ``cron`` (UTC);
    each run is charged like a job, and auto_release releases it when every gate holds."""
    dataset = live(get_scoped(s, Dataset, body.dataset_id, who))
    once.replay(s, who.key_id)
    job = body.job.model_dump(exclude_unset=True)
    _one_run_fits(dataset, job)
    sch = Schedule(
        id=new_id(),
        project_id=dataset.project_id,
        dataset_id=dataset.id,
        cron=body.cron,
        job=job,
        auto_release=body.auto_release,
        created_by=who.key_id,
        state="active",
        created_at=now(),
    )
    s.add(sch)
    audit(s, who, "schedule.create", project_id=sch.project_id, target=sch.id, cron=sch.cron)
    s.flush()  # column defaults (log, created_at) filled in for the stored answer
    view = schedule_view(sch, [])
    once.commit(s, who.key_id, 201, view)
    return view


@router.get("", response_model=Page[ScheduleView], operation_id="listSchedules")
def list_schedules(
    state: Literal["active", "paused", "deleted"] | None = Query(
        default=None, description="only schedules in this state (default: all but deleted)"
    ),
    dataset_id: str | None = Query(default=None, max_length=64, description="only this dataset's"),
    params: PageParams = Depends(page_params),
    who: Principal = Depends(require(Role.OWNER, Role.AUDITOR)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    """Schedules of the key's project with their last runs, oldest first."""
    query = select(Schedule)
    if who.project_id is not None:
        query = query.where(Schedule.project_id == who.project_id)
    if state is None:
        query = query.where(Schedule.state != "deleted")
    else:
        query = query.where(Schedule.state == state)
    if dataset_id is not None:
        query = query.where(Schedule.dataset_id == dataset_id)
    rows = list(s.scalars(keyset(query, Schedule.created_at, Schedule.id, params)))
    return page(
        rows,
        params,
        lambda sch: (sch.created_at, sch.id),
        lambda sch: schedule_view(sch, _recent_runs(s, sch.id)),
    )


@router.get("/{schedule_id}", response_model=ScheduleView, operation_id="getSchedule")
def get_schedule(
    schedule_id: str,
    who: Principal = Depends(require(Role.OWNER, Role.AUDITOR)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    sch = get_scoped(s, Schedule, schedule_id, who)
    return schedule_view(sch, _recent_runs(s, sch.id))


@router.patch("/{schedule_id}", response_model=ScheduleView, operation_id="updateSchedule")
def update_schedule(
    schedule_id: str,
    body: SchedulePatch,
    who: Principal = Depends(require(Role.OWNER)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    """Pause (``state: paused``), resume (``state: active``), re-time or change the job.
    A resumed or re-timed schedule fires only at times after the change: what fell due
    while it was paused is not made up."""
    sch = get_scoped(s, Schedule, schedule_id, who)
    if sch.state == "deleted":
        raise Problem(409, "Schedule Deleted", f"schedule {sch.id} is deleted")
    changed = body.model_dump(exclude_unset=True, exclude_none=True)
    if body.job is not None:
        sch.job = body.job.model_dump(exclude_unset=True)
    if body.auto_release is not None:
        sch.auto_release = body.auto_release
    restart = (body.state == "active" and sch.state != "active") or (
        body.cron is not None and body.cron != sch.cron
    )
    if body.cron is not None:
        sch.cron = body.cron
    if body.state is not None:
        sch.state, sch.state_reason = body.state, None
    if sch.state == "active" and (restart or body.job is not None):
        _one_run_fits(s.get(Dataset, sch.dataset_id), sch.job)  # type: ignore[arg-type]
    if restart:
        sch.fires_after = now()
    audit(s, who, "schedule.update", project_id=sch.project_id, target=sch.id, **changed)
    s.commit()
    return schedule_view(sch, _recent_runs(s, sch.id))


@router.delete("/{schedule_id}", response_model=ScheduleView, operation_id="deleteSchedule")
def delete_schedule(
    schedule_id: str,
    who: Principal = Depends(require(Role.OWNER)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    """Stop a schedule for good; it stays listed under ``state=deleted`` with its runs
    (jobs it started are not touched: cancel them at /v1/jobs/{id}/cancel)."""
    sch = get_scoped(s, Schedule, schedule_id, who)
    if sch.state != "deleted":
        sch.state, sch.state_reason = "deleted", f"deleted by {who.key_id}"
        audit(s, who, "schedule.delete", project_id=sch.project_id, target=sch.id)
        s.commit()
    return schedule_view(sch, _recent_runs(s, sch.id))

"""Scheduled retraining: a cron expression and the job to run on the newest version."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api.deps import get_scoped, session
from service.api.views import ScheduleView
from service.db import Dataset, Role, Schedule, ScheduleRun
from service.domain.jobs import JobOptionsRequest
from service.domain.records import audit, iso, new_id
from service.http.auth import Principal, require

MIN_INTERVAL = timedelta(minutes=10)

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])


class ScheduleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo'd field is a 422, never a default
    dataset_id: str
    cron: str
    job: JobOptionsRequest  # what POST /v1/jobs takes, less the dataset
    auto_release: bool = False

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from croniter import croniter

        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (minute hour day month weekday)")
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


def schedule_view(sch: Schedule, runs: list[ScheduleRun]) -> dict[str, Any]:
    return {
        "id": sch.id,
        "dataset_id": sch.dataset_id,
        "cron": sch.cron,
        "job": sch.job,
        "auto_release": sch.auto_release,
        "created_at": iso(sch.created_at),
        "runs": [
            {
                "fire_time": iso(r.fire_time),
                "job_id": r.job_id,
                "skipped_reason": r.skipped_reason,
            }
            for r in runs
        ],
    }


@router.post("", status_code=201, response_model=ScheduleView, operation_id="createSchedule")
def create_schedule(
    body: ScheduleRequest,
    who: Principal = Depends(require(Role.OWNER)),
    s: Session = Depends(session),
) -> dict[str, Any]:
    dataset = get_scoped(s, Dataset, body.dataset_id, who)
    sch = Schedule(
        id=new_id(),
        project_id=dataset.project_id,
        dataset_id=dataset.id,
        cron=body.cron,
        job=body.job.model_dump(exclude_unset=True),
        auto_release=body.auto_release,
        created_by=who.key_id,
    )
    s.add(sch)
    audit(s, who, "schedule.create", project_id=sch.project_id, target=sch.id, cron=sch.cron)
    s.commit()
    return schedule_view(sch, [])


@router.get("", response_model=list[ScheduleView], operation_id="listSchedules")
def list_schedules(
    who: Principal = Depends(require(Role.OWNER, Role.AUDITOR)), s: Session = Depends(session)
) -> list[dict[str, Any]]:
    query = select(Schedule)
    if who.project_id is not None:
        query = query.where(Schedule.project_id == who.project_id)
    out = []
    for sch in s.scalars(query.order_by(Schedule.created_at)):
        runs = s.scalars(
            select(ScheduleRun)
            .where(ScheduleRun.schedule_id == sch.id)
            .order_by(ScheduleRun.fire_time)
        ).all()
        out.append(schedule_view(sch, list(runs)))
    return out

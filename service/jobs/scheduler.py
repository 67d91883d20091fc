"""Scheduled retraining: each due fire time of each schedule is enqueued exactly once.

Exactly-once holds across any number of schedulers: a run is created by inserting
(schedule_id, fire_time) under a unique key in the same transaction as the job and its
budget charge; the second scheduler's insert fails and it moves on. A run that would
exceed the budget is recorded as skipped, with the reason, and pauses its schedule
(resuming is the owner's call, once the budget allows a run).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import Dataset, Schedule, ScheduleRun, aware, now
from service.domain.jobs import JobRequest, enqueue
from service.domain.records import audit
from service.errors import Problem
from service.jobs.runner import JobContext, Runner, reap_stale

__all__ = ["due_fire_times", "run_loop", "tick"]

logger = logging.getLogger(__name__)
LOOKBACK = timedelta(hours=1)  # fire times missed while no scheduler ran, still honoured


def due_fire_times(cron: str, since: datetime, until: datetime) -> list[datetime]:
    it = croniter(cron, since)
    times = []
    while (t := it.get_next(datetime)) <= until:
        times.append(t)
    return times


def tick(ctx: JobContext, runner: Runner, at: datetime | None = None) -> list[str]:
    """Enqueue every due run not yet enqueued; returns the new job ids."""
    at = at or now()
    started: list[str] = []
    with ctx.sessions() as s:
        schedules = s.scalars(select(Schedule).where(Schedule.state == "active")).all()
    for sch in schedules:
        since = max(aware(sch.fires_after or sch.created_at), at - LOOKBACK)
        for fire in due_fire_times(sch.cron, since, at):
            job_id = _fire(ctx, sch, fire)
            if job_id == STOPPED:
                break  # skipped and paused, or paused or deleted by its owner meanwhile
            if job_id is not None:  # None: enqueued before (this or another scheduler)
                runner.submit(job_id)
                started.append(job_id)
    return started


STOPPED = ""  # what _fire answers when the schedule is no longer active


def _fire(ctx: JobContext, sch: Schedule, fire: datetime) -> str | None:
    with ctx.sessions() as s:
        run = ScheduleRun(schedule_id=sch.id, fire_time=fire)
        s.add(run)
        try:
            s.flush()  # the unique key: another scheduler got here first
        except IntegrityError:
            s.rollback()
            return None
        current = s.get(Schedule, sch.id)
        if current is None or current.state != "active":  # paused or deleted since the read
            s.rollback()
            return STOPPED
        dataset = s.get(Dataset, sch.dataset_id)
        assert dataset is not None
        try:
            request = JobRequest(dataset_id=dataset.id, **sch.job)
            job = enqueue(s, dataset, request, "scheduler", min_rows=ctx.settings.min_job_rows)
        except Problem as e:
            s.rollback()  # the charge's rollback also dropped the run row: record the skip
            s.add(ScheduleRun(schedule_id=sch.id, fire_time=fire, skipped_reason=e.detail))
            _pause(s, sch.id, f"paused: the run due {fire.isoformat()} was skipped: {e.detail}")
            audit(
                s,
                "scheduler",
                "schedule.skip",
                project_id=sch.project_id,
                target=sch.id,
                fire_time=fire.isoformat(),
                reason=e.detail,
            )
            try:
                s.commit()
            except IntegrityError:
                s.rollback()
            return STOPPED
        run.job_id = job.id
        audit(
            s,
            "scheduler",
            "job.create",
            project_id=sch.project_id,
            target=job.id,
            schedule_id=sch.id,
            fire_time=fire.isoformat(),
        )
        s.commit()
        return job.id


def _pause(s: Session, schedule_id: str, reason: str) -> None:
    sch = s.get(Schedule, schedule_id)
    if sch is not None and sch.state == "active":
        sch.state, sch.state_reason = "paused", reason


def run_loop(ctx: JobContext, runner: Runner, stop: threading.Event, every: float = 30.0) -> None:
    while not stop.wait(every):
        try:
            reap_stale(ctx)  # jobs of workers that died while this server ran
            tick(ctx, runner)
        except Exception:
            logger.exception("scheduler tick failed")

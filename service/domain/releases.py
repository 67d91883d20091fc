"""Releases a scheduled retrain on its own when its schedule says so and every gate holds.

A scheduled run has no owner at the keyboard, so there is no override: a model with a
failed gate is held back (and the audit log says which gate), for an owner to decide.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import Job, Model, Release, Schedule, ScheduleRun
from service.domain.records import audit, new_id

__all__ = ["release_if_scheduled"]

logger = logging.getLogger(__name__)
ACTOR = "scheduler"


def release_if_scheduled(s: Session, job: Job, model: Model) -> str | None:
    """The new release's id, or None when the job was not an auto-released schedule's."""
    schedule = s.scalar(
        select(Schedule)
        .join(ScheduleRun, ScheduleRun.schedule_id == Schedule.id)
        .where(ScheduleRun.job_id == job.id)
    )
    if schedule is None or not schedule.auto_release:
        return None
    failed = [g["name"] for g in model.gates["gates"] if g["status"] == "fail"]
    if failed:
        logger.info("model %s held back from auto-release: %s", model.id, failed)
        audit(
            s, ACTOR, "release.withheld", project_id=model.project_id, target=model.id,
            schedule_id=schedule.id, failed_gates=failed,
        )  # fmt: skip
        return None
    release = Release(
        id=new_id(), project_id=model.project_id, model_id=model.id,
        approved_by=ACTOR, override_reason=None,
    )  # fmt: skip
    s.add(release)
    audit(
        s, ACTOR, "release.create", project_id=model.project_id, target=release.id,
        model_id=model.id, schedule_id=schedule.id, failed_gates=[], override_reason=None,
    )  # fmt: skip
    return release.id

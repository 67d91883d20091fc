"""The Celery worker's side: the task that runs a queued job (``sanitas worker``)."""

from __future__ import annotations

from celery import Celery

from service.jobs.celery_app import RUN_JOB, make_celery
from service.jobs.runner import JobContext, execute_job

__all__ = ["make_worker"]


def make_worker(broker_url: str, ctx: JobContext) -> Celery:
    """The Celery app with the job task bound to this worker's context."""
    app = make_celery(broker_url)

    @app.task(name=RUN_JOB)
    def run_job(job_id: str) -> None:
        execute_job(ctx, job_id)

    return app

"""Celery over Redis for scale-out: `sanitas worker` runs jobs that the API queued.

The task only carries a job id; the worker reads everything else from the database
and storage, exactly as the in-process runner does (``runner.execute_job``).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

__all__ = ["make_celery"]


def make_celery(broker_url: str, ctx: Any = None) -> Celery:
    app = Celery("sanitas", broker=broker_url)
    app.conf.update(
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_reject_on_worker_lost=True,
        broker_connection_retry_on_startup=True,
    )
    if ctx is not None:
        from service.runner import execute_job

        @app.task(name="sanitas.run_job")
        def run_job(job_id: str) -> None:
            execute_job(ctx, job_id)

    return app

"""Celery over Redis for scale-out: the broker client the API queues jobs through.

The task only carries a job id; a worker (``celery_worker``, run by ``sanitas
worker``) reads everything else from the database and storage, exactly as the
in-process runner does. The task is sent by name, so this side never imports the
runner.
"""

from __future__ import annotations

from celery import Celery

__all__ = ["RUN_JOB", "make_celery"]

RUN_JOB = "sanitas.run_job"


def make_celery(broker_url: str) -> Celery:
    app = Celery("sanitas", broker=broker_url)
    app.conf.update(
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_reject_on_worker_lost=True,
        broker_connection_retry_on_startup=True,
    )
    return app

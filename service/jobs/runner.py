"""Running jobs: the database row is the truth, the work happens in a child process.

``execute_job`` claims a queued job (a conditional UPDATE, so two workers never run one
job), decrypts its data into the job directory, runs ``python -m service.jobs.job_process``
and mirrors the child's progress lines into the row, heartbeating while it waits. The
in-process ``LocalRunner`` (embedded default) and the Celery task both call it; a
crash in the child fails the job, never the API.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.db import Dataset, DatasetVersion, Job, JobState, Model, now
from service.domain.budget import refund
from service.domain.releases import release_if_scheduled
from service.jobs.job_contract import JobOptions, JobSpec, JobWorkspace, Progress
from service.jobs.sweep import remove_job_plaintext
from service.settings import Settings
from service.storage.data_keys import dataset_keys
from service.storage.encrypted import decode_key, decrypt_to, key_for
from service.storage.object_store import ObjectStore

__all__ = [
    "CeleryRunner",
    "JobContext",
    "LocalRunner",
    "Runner",
    "execute_job",
    "finish",
    "reap_stale",
]

logger = logging.getLogger(__name__)
LOG_LINES = 200


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    sessions: sessionmaker
    key: bytes
    objects: ObjectStore

    @property
    def keys(self) -> list[bytes]:
        """The current key, then keys being rotated out (settings.previous_encryption_keys)."""
        return [self.key, *(decode_key(k) for k in self.settings.previous_encryption_keys)]


class Runner(Protocol):
    def submit(self, job_id: str) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


def finish(s: Session, job: Job, state: JobState, *, error: str | None = None) -> None:
    """Close a job; a job that never touched its data gets its charge back."""
    job.state, job.error, job.finished_at = state, error, now()
    if state != JobState.SUCCEEDED and not job.touched_data and job.epsilon:
        refund(
            s,
            job.dataset_id,
            job.epsilon,
            float(job.spec.get("delta") or 0.0),
            job_id=job.id,
            reason=f"job {job.id} {state} before touching data",
            version_id=job.version_id,
        )


def _claim(ctx: JobContext, job_id: str, worker: str) -> bool:
    with ctx.sessions() as s:
        done = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.QUEUED)
            .values(state=JobState.RUNNING, worker=worker, heartbeat_at=now())
            .execution_options(synchronize_session=False)
        )
        s.commit()
        return done.rowcount == 1  # type: ignore[attr-defined]


def _update(ctx: JobContext, job_id: str, **values: Any) -> bool:
    """Write fields; returns whether cancellation was asked for."""
    with ctx.sessions() as s:
        job = s.get(Job, job_id)
        assert job is not None
        for k, v in values.items():
            setattr(job, k, v)
        job.heartbeat_at = now()
        s.commit()
        return job.cancel_requested


def _append_log(log: str, line: str) -> str:
    return "\n".join([*log.splitlines()[-LOG_LINES:], line])


def _job_spec(job: Job, dataset: Dataset, version: DatasetVersion, data: Path) -> JobSpec:
    subject = {"dataset_id": dataset.id, "dataset_name": dataset.name,
               "dataset_version": version.number, "version_id": version.id,
               "job_id": job.id, "model_id": job.id}  # fmt: skip
    return JobSpec(
        data=str(data), schema=dataset.schema_json, job=JobOptions(**job.spec), subject=subject
    )


def execute_job(ctx: JobContext, job_id: str) -> None:
    worker = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    if not _claim(ctx, job_id, worker):
        return
    work = JobWorkspace(ctx.settings.data_dir / "jobs" / job_id)
    work.directory.mkdir(parents=True, exist_ok=True)
    with ctx.sessions() as s:
        job = s.get(Job, job_id)
        dataset, version = s.get(Dataset, job.dataset_id), s.get(DatasetVersion, job.version_id)
        job.touched_data = True  # from here on the charge stays, whatever happens
        job.log = _append_log(job.log, f"decrypting dataset version {version.number}")
        s.commit()
        data = work.data(version.format)
        spec = _job_spec(job, dataset, version, data)
    try:
        with ctx.objects.fetched(version.path, work.encrypted) as encrypted:
            keys = dataset_keys(ctx.keys, dataset.id, dataset.data_key)
            decrypt_to(key_for(keys, encrypted), encrypted, data)
        work.write_spec(spec)
        state, error = _run_child(ctx, job_id, work)
    except Exception as e:
        logger.exception("job %s failed outside its process", job_id)
        state, error = JobState.FAILED, f"{type(e).__name__}: {e}"
    finally:
        data.unlink(missing_ok=True)  # plaintext rows never outlive the job
    with ctx.sessions() as s:
        job = s.get(Job, job_id)
        if state == JobState.SUCCEEDED:
            job.model_id = _register_model(ctx, s, job, work)
            s.flush()
            release_if_scheduled(s, job, s.get(Model, job.model_id))
            job.progress = 1.0
        finish(s, job, state, error=error)
        s.commit()


def _run_child(ctx: JobContext, job_id: str, work: JobWorkspace) -> tuple[JobState, str | None]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, "-m", "service.jobs.job_process", str(work.directory)],
        stdout=subprocess.PIPE,
        stderr=work.stderr.open("wb"),
        text=True,
        env=env,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    log, progress, ended = "", 0.0, False
    with ctx.sessions() as s:
        log = s.get(Job, job_id).log
    while not ended:
        try:
            line = lines.get(timeout=ctx.settings.heartbeat_seconds)
        except queue.Empty:
            line = ""
        if line is None:
            ended = True
            line = ""
        if line.strip():
            event = Progress.parse(line)
            progress = event.progress
            log = _append_log(log, event.message)
        if _update(ctx, job_id, progress=progress, log=log):
            child.terminate()
            child.wait(timeout=30)
            return JobState.CANCELLED, "cancelled by the owner"
    code = child.wait()
    if code != 0:
        tail = work.stderr.read_text(errors="replace").strip().splitlines()[-5:]
        return JobState.FAILED, f"the job process exited with {code}: " + " | ".join(tail)
    return JobState.SUCCEEDED, None


def _register_model(ctx: JobContext, s: Session, job: Job, work: JobWorkspace) -> str:
    result = work.read_result()
    model_id = job.id  # one model per job
    target, report = f"models/{model_id}", f"reports/{model_id}"
    ctx.objects.adopt_dir(work.model, target)
    ctx.objects.adopt_dir(work.report, report)
    s.add(
        Model(
            id=model_id,
            project_id=job.project_id,
            dataset_id=job.dataset_id,
            job_id=job.id,
            generator=result.generator,
            path=target,
            privacy=result.privacy,
            schema_json=result.table_schema,
            gates={"gates": result.gates, "passed": result.passed},
            report_path=report,
        )
    )
    return model_id


def reap_stale(ctx: JobContext) -> int:
    """Fail running jobs whose worker stopped heartbeating; re-queue untouched ones."""
    cutoff = now() - timedelta(seconds=ctx.settings.job_lease_seconds)
    count = 0
    with ctx.sessions() as s:
        stale = s.scalars(
            select(Job).where(Job.state == JobState.RUNNING, Job.heartbeat_at < cutoff)
        ).all()
        for job in stale:
            if job.touched_data:
                finish(s, job, JobState.FAILED, error=f"worker {job.worker} stopped heartbeating")
                remove_job_plaintext(ctx.settings.data_dir, job.id)
            else:
                job.state, job.worker = JobState.QUEUED, None
            count += 1
        s.commit()
    return count


class LocalRunner:
    """Worker threads inside the API process; each job still runs in its own child."""

    def __init__(self, ctx: JobContext, threads: int) -> None:
        self.ctx, self.threads = ctx, threads
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._workers: list[threading.Thread] = []

    def submit(self, job_id: str) -> None:
        self._queue.put(job_id)

    def start(self) -> None:
        reap_stale(self.ctx)
        with self.ctx.sessions() as s:  # jobs queued before a restart
            for job_id in s.scalars(select(Job.id).where(Job.state == JobState.QUEUED)):
                self._queue.put(job_id)
        for i in range(self.threads):
            t = threading.Thread(target=self._loop, name=f"sanitas-worker-{i}", daemon=True)
            t.start()
            self._workers.append(t)

    def stop(self) -> None:
        for _ in self._workers:
            self._queue.put(None)
        for t in self._workers:
            t.join(timeout=5)

    def _loop(self) -> None:
        while (job_id := self._queue.get()) is not None:
            try:
                execute_job(self.ctx, job_id)
            except Exception:
                logger.exception("job %s crashed its worker thread", job_id)


class CeleryRunner:
    """Jobs go to Celery workers over the broker (``sanitas worker``)."""

    def __init__(self, broker_url: str) -> None:
        from service.jobs.celery_app import RUN_JOB, make_celery

        self.celery, self.task = make_celery(broker_url), RUN_JOB

    def submit(self, job_id: str) -> None:
        self.celery.send_task(self.task, args=[job_id])

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


def wait_for(ctx: JobContext, job_id: str, timeout: float = 600) -> Job:
    """Poll until the job ends (tests and the CLI demo)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with ctx.sessions() as s:
            job = s.get(Job, job_id)
            if job.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
                return job
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} still running after {timeout}s")

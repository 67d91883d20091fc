"""Clearing what a killed process leaves on disk: half-written uploads and plaintext.

A ``kill -9`` skips every ``finally``: an upload being encrypted leaves its
``.partial`` file, an image upload its decoded temporary folder, a job its decrypted
``data.*`` copy. The server sweeps them at start-up and the reaper when it fails a
job. Files younger than ``stale_seconds`` are left alone, so the sweep of one API
replica cannot remove another's upload in flight.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.db import Job, JobState
from service.storage.image_uploads import UPLOAD_TMP_PREFIX

__all__ = ["remove_job_plaintext", "sweep"]

logger = logging.getLogger(__name__)


def remove_job_plaintext(data_dir: Path, job_id: str) -> int:
    work = data_dir / "jobs" / job_id
    removed = 0
    for path in work.glob("data.*") if work.exists() else []:
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def sweep(data_dir: Path, sessions: sessionmaker[Session], *, stale_seconds: float) -> int:
    """Remove leftovers of killed processes; returns how many were removed."""
    cutoff = time.time() - stale_seconds
    removed = 0
    for partial in (data_dir / "datasets").glob("*.partial"):
        if partial.stat().st_mtime <= cutoff:
            partial.unlink(missing_ok=True)
            removed += 1
    for folder in data_dir.glob(UPLOAD_TMP_PREFIX + "*"):
        if folder.is_dir() and folder.stat().st_mtime <= cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    jobs = data_dir / "jobs"
    if jobs.exists():
        with sessions() as s:
            running = set(s.scalars(select(Job.id).where(Job.state == JobState.RUNNING)))
        for work in jobs.iterdir():
            if work.name not in running:
                removed += remove_job_plaintext(data_dir, work.name)
    if removed:
        logger.warning("removed %d leftovers of killed processes under %s", removed, data_dir)
    return removed

"""Move every dataset from the keys being retired to the current key.

A dataset with its own data key (service.storage.data_keys) is moved by re-wrapping
that key: 32 bytes in its database row, its files untouched. Files of datasets from
before revision 0003 are under the server key itself and are re-encrypted:

The order makes a crash at any point safe and a re-run finish the work: the file is
written again under the new key as a new object, the database row is pointed at it
in its own transaction, and only then is the old object deleted. Until the run ends,
files under an old key stay readable because the workers are given the old keys too
(``SANITAS_PREVIOUS_ENCRYPTION_KEYS``). A crash between the steps leaves at most one
orphan object, which nothing points at.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.db import Dataset, DatasetVersion
from service.storage.data_keys import rewrap, wrapped_under
from service.storage.encrypted import key_for, reencrypt
from service.storage.object_store import ObjectStore

__all__ = ["RotationResult", "rotate"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RotationResult:
    rotated: int  # files and data keys moved to the current key by this run
    current: int  # those already under it


def rotate(
    sessions: sessionmaker[Session],
    objects: ObjectStore,
    *,
    current: bytes,
    previous: list[bytes],
    scratch: Path,
) -> RotationResult:
    """Re-encrypt every dataset version not under ``current``; raises StorageError (and
    stops) at a file under none of the keys, leaving the rest as they are."""
    scratch.mkdir(parents=True, exist_ok=True)
    rewrapped, wrapped_already = _rewrap_data_keys(sessions, current, previous)
    with sessions() as s:
        versions = [
            (v.id, v.path, v.format)
            for v in s.scalars(
                select(DatasetVersion)
                .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
                .where(Dataset.data_key.is_(None), DatasetVersion.path != "")
            )
        ]
    rotated, already = rewrapped, wrapped_already
    for version_id, path, fmt in versions:
        with objects.fetched(path, scratch / "rotating.enc") as encrypted:
            key = key_for([current, *previous], encrypted)
            if key == current:
                already += 1
                continue
            fresh = reencrypt(key, current, encrypted, objects.data_dir, f".{fmt}")
        objects.adopt(str(fresh))
        with sessions() as s:
            row = s.get(DatasetVersion, version_id)
            assert row is not None
            row.path = str(fresh)
            s.commit()
        objects.delete(path)
        rotated += 1
        logger.info("dataset version %s: now under the current key", version_id)
    return RotationResult(rotated, already)


def _rewrap_data_keys(
    sessions: sessionmaker[Session], current: bytes, previous: list[bytes]
) -> tuple[int, int]:
    """Each dataset's data key wrapped under ``current``: (re-wrapped, already so)."""
    keys, moved, already = [current, *previous], 0, 0
    with sessions() as s:
        for dataset in s.scalars(select(Dataset).where(Dataset.data_key.is_not(None))):
            assert dataset.data_key is not None
            if wrapped_under(keys, dataset.data_key, dataset.id) == 0:
                already += 1
                continue
            dataset.data_key = rewrap(keys, current, dataset.data_key, dataset.id)
            s.commit()  # one dataset at a time: a crash leaves each under a key given
            moved += 1
            logger.info("dataset %s: data key now wrapped under the current key", dataset.id)
    return moved, already

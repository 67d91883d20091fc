"""A dataset version's rows, decrypted for a check that must see them, then gone.

Why: a declared kind that the rows cannot hold (a text column declared a date) would
otherwise surface in the job, after its epsilon was charged. The plaintext lives in a
scratch folder for the length of the check only, as a job's copy does.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from service.db import Dataset, DatasetVersion
from service.domain.records import new_id
from service.storage.data_keys import dataset_keys
from service.storage.encrypted import decrypt_to, key_for
from service.storage.tables import read_table

__all__ = ["version_rows"]


def version_rows(
    objects: Any,
    server_keys: list[bytes],
    data_dir: Path,
    dataset: Dataset,
    version: DatasetVersion,
    columns: list[str],
) -> pd.DataFrame:
    """The version's ``columns``, read from a decrypted copy removed before returning."""
    scratch = data_dir / "scratch" / new_id()
    scratch.mkdir(parents=True)
    try:
        with objects.fetched(version.path, scratch / "encrypted") as encrypted:
            keys = dataset_keys(server_keys, dataset.id, dataset.data_key)
            plain = scratch / f"data.{version.format}"
            decrypt_to(key_for(keys, encrypted), encrypted, plain)
        return read_table(plain)[columns]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

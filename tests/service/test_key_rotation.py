"""`sanitas encryption rotate`: real uploads under an old key, moved to a new key by the
CLI against the same database and files; the plaintext is unchanged (its SHA-256 was
recorded at upload), the old files are gone, and a second run finds nothing to do."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from service.db import Dataset, DatasetVersion
from service.storage.data_keys import unwrap
from service.storage.encrypted import StorageError, iter_decrypted, key_for, reencrypt

pytestmark = pytest.mark.slow


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _rotate(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "encryption", "rotate"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _make_legacy(api, dataset_id: str, server_key: bytes) -> None:
    """The dataset as an upload from before revision 0003 left it: its file under the
    server key itself and no data key (what that code wrote)."""
    with api.client.app.state.sessions() as s:
        dataset = s.get(Dataset, dataset_id)
        [version] = s.query(DatasetVersion).filter(DatasetVersion.dataset_id == dataset_id)
        source = Path(api.data_dir) / version.path
        data_key = unwrap([server_key], dataset.data_key, dataset_id)
        version.path = str(reencrypt(data_key, server_key, source, Path(api.data_dir), ".parquet"))
        dataset.data_key = None
        source.unlink()
        s.commit()


def test_rotation_moves_every_dataset_to_the_new_key(api_factory, database_url, cps_small, fair):
    """Datasets with a data key: only the wrapped key changes (files untouched); a
    dataset from before data keys: its file is re-encrypted under the new key."""
    old, new = _key(), _key()
    new_key, old_key = base64.urlsafe_b64decode(new), base64.urlsafe_b64decode(old)
    api = api_factory(worker_threads=0, encryption_key=old)
    ds = api.upload(cps_small)
    legacy = api.upload(fair, name="fair", filename="fair.parquet")
    again = api.client.post(
        f"/v1/datasets/{ds['id']}/versions", headers=api.auth("owner"),
        files={"file": ("v2.csv", cps_small.head(500).to_csv(index=False))},
    )  # fmt: skip
    assert again.status_code == 201, again.text
    _make_legacy(api, legacy["id"], old_key)
    with api.client.app.state.sessions() as s:
        before = {v.id: (v.dataset_id, v.path, v.sha256) for v in s.query(DatasetVersion)}
    assert len(before) == 3

    base = {"SANITAS_DATA_DIR": str(api.data_dir), "SANITAS_DATABASE_URL": database_url,
            "PATH": "/usr/bin:/bin"}  # fmt: skip
    refused = _rotate({**base, "SANITAS_ENCRYPTION_KEY": new})
    assert refused.returncode == 2 and "SANITAS_PREVIOUS_ENCRYPTION_KEYS" in refused.stderr
    wrong = _rotate({**base, "SANITAS_ENCRYPTION_KEY": new,
                     "SANITAS_PREVIOUS_ENCRYPTION_KEYS": json.dumps([_key()])})  # fmt: skip
    assert wrong.returncode == 2 and "under none of the" in wrong.stderr

    env = {**base, "SANITAS_ENCRYPTION_KEY": new,
           "SANITAS_PREVIOUS_ENCRYPTION_KEYS": json.dumps([old])}  # fmt: skip
    done = _rotate(env)
    assert done.returncode == 0, done.stderr
    # one data key re-wrapped (its two files untouched), one legacy file re-encrypted
    assert json.loads(done.stdout) == {"rotated": 2, "already_current": 0}

    with api.client.app.state.sessions() as s:
        after = {v.id: v.path for v in s.query(DatasetVersion)}
        wrapped = {d.id: d.data_key for d in s.query(Dataset)}
    for version_id, (dataset_id, old_path, sha256) in before.items():
        path = Path(api.data_dir) / after[version_id]
        if dataset_id == legacy["id"]:
            assert after[version_id] != old_path and not (Path(api.data_dir) / old_path).exists()
            assert wrapped[dataset_id] is None
            key = key_for([new_key], path)
        else:
            assert after[version_id] == old_path  # the file was not touched
            with pytest.raises(StorageError):
                unwrap([old_key], wrapped[dataset_id], dataset_id)
            key = unwrap([new_key], wrapped[dataset_id], dataset_id)
        with pytest.raises(StorageError):
            key_for([old_key], path)
        plain = hashlib.sha256(b"".join(iter_decrypted(key, path))).hexdigest()
        assert plain == sha256  # the same bytes as uploaded

    second = _rotate(env)
    assert json.loads(second.stdout) == {"rotated": 0, "already_current": 2}

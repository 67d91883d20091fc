"""One AES key per dataset, stored wrapped by the server key: erasing a dataset is
destroying its wrapped key.

Every file of a dataset (each version, in the data directory or a bucket, and any
copy a backup or a versioned bucket keeps) is under the dataset's own key. The
database holds that key only wrapped (AES-256-GCM under the server key, bound to the
dataset's id as associated data, so a wrapped key moved to another dataset's row does
not open). Deleting the dataset deletes the wrapped key: every copy of its ciphertext,
wherever it lies, becomes unreadable at once, the server key included (a database
backup taken before the deletion still holds the wrapped key until it expires: see
docs/operations.md). Rotating the server key re-wraps 32 bytes per dataset instead of
re-encrypting its files.

Datasets uploaded before revision 0003 have no data key: their files stay under the
server key (``data_key`` null), and erasing them deletes those files.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.storage.encrypted import StorageError

__all__ = ["dataset_keys", "new_data_key", "rewrap", "unwrap", "wrapped_under"]

NONCE = 12
PURPOSE = b"sanitas data key v1:"


def _associated(dataset_id: str) -> bytes:
    return PURPOSE + dataset_id.encode()


def _wrap(server_key: bytes, data_key: bytes, dataset_id: str) -> str:
    nonce = secrets.token_bytes(NONCE)
    sealed = AESGCM(server_key).encrypt(nonce, data_key, _associated(dataset_id))
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def new_data_key(server_key: bytes, dataset_id: str) -> tuple[bytes, str]:
    """A fresh data key for ``dataset_id`` and its wrapped form (what the row stores)."""
    data_key = secrets.token_bytes(32)
    return data_key, _wrap(server_key, data_key, dataset_id)


def wrapped_under(server_keys: list[bytes], wrapped: str, dataset_id: str) -> int:
    """The index in ``server_keys`` of the key ``wrapped`` opens under; StorageError
    when none (during a rotation a dataset's key is under the new or an old key)."""
    raw = base64.urlsafe_b64decode(wrapped.encode())
    for index, key in enumerate(server_keys):
        try:
            AESGCM(key).decrypt(raw[:NONCE], raw[NONCE:], _associated(dataset_id))
            return index
        except InvalidTag:
            continue
    raise StorageError(
        f"the data key of dataset {dataset_id} opens under none of the {len(server_keys)} "
        "server keys given"
    )


def unwrap(server_keys: list[bytes], wrapped: str, dataset_id: str) -> bytes:
    """The dataset's data key (StorageError when no server key opens it)."""
    raw = base64.urlsafe_b64decode(wrapped.encode())
    key = server_keys[wrapped_under(server_keys, wrapped, dataset_id)]
    return AESGCM(key).decrypt(raw[:NONCE], raw[NONCE:], _associated(dataset_id))


def rewrap(server_keys: list[bytes], current: bytes, wrapped: str, dataset_id: str) -> str:
    """``wrapped`` under ``current`` (the data key, and so its files, unchanged)."""
    return _wrap(current, unwrap(server_keys, wrapped, dataset_id), dataset_id)


def dataset_keys(server_keys: list[bytes], dataset_id: str, wrapped: str | None) -> list[bytes]:
    """The keys a dataset's files may be under: its data key, or (a dataset from before
    revision 0003) the server keys."""
    return server_keys if wrapped is None else [unwrap(server_keys, wrapped, dataset_id)]

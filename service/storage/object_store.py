"""Where datasets (encrypted), model artifacts and reports live: the data directory, or
an S3-compatible bucket when ``SANITAS_STORAGE_URL=s3://bucket/prefix``.

Keys are the relative paths the database already records (``datasets/<id>.csv.enc``,
``models/<id>``, ``reports/<id>``). Everything is written once under a fresh key and
never changed, so a node may keep what it read in its cache (``data_dir/cache``)
without invalidation: an API replica or a worker holds no state the bucket lacks.
Uploads are encrypted before they reach this layer (``service.storage.encrypted``); the bucket
only ever sees ciphertext for datasets.

The local store is the embedded default and moves nothing: its keys are paths under
the data directory, as they always were.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec

if TYPE_CHECKING:
    from service.settings import Settings

__all__ = ["ObjectStore", "ObjectStoreError", "from_settings"]

logger = logging.getLogger(__name__)


class ObjectStoreError(Exception):
    """The object store is misconfigured or does not hold what the database says."""


class ObjectStore:
    """Put, fetch and delete immutable objects by key; fsspec underneath."""

    def __init__(
        self, data_dir: Path, url: str | None = None, options: dict[str, Any] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.url = url
        if url is None:
            self.remote = False
            self.fs: Any = fsspec.filesystem("file")
            self.root = str(data_dir.resolve())
        else:
            self.remote = True
            try:
                self.fs, self.root = fsspec.core.url_to_fs(url, **(options or {}))
            except (ImportError, ValueError) as e:  # e.g. s3fs missing for s3://
                raise ObjectStoreError(f"SANITAS_STORAGE_URL={url!r}: {e}") from e
            self.root = self.root.rstrip("/")
        self.cache = data_dir / "cache"

    def _path(self, key: str) -> str:
        if key.startswith("/") or ".." in Path(key).parts:
            raise ObjectStoreError(f"object key {key!r} is not a relative path")
        return f"{self.root}/{key}"

    def adopt(self, key: str) -> None:
        """Take ``data_dir/key``, just written locally, into the store."""
        if not self.remote:
            return
        local = self.data_dir / key
        self.fs.put_file(str(local), self._path(key))
        local.unlink()

    def adopt_dir(self, local: Path, key: str) -> None:
        """Take a finished directory (a model, a report) into the store under ``key``."""
        if not self.remote:
            target = self.data_dir / key
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(local), target)
            return
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            self.fs.put_file(str(path), self._path(f"{key}/{path.relative_to(local)}"))
        shutil.rmtree(local)

    @contextmanager
    def fetched(self, key: str, scratch: Path) -> Iterator[Path]:
        """A local file with the object's bytes, for as long as the block runs.

        Local store: the file itself. Remote: a copy at ``scratch``, removed after.
        """
        if not self.remote:
            yield self.data_dir / key
            return
        self.fs.get_file(self._path(key), str(scratch))
        try:
            yield scratch
        finally:
            scratch.unlink(missing_ok=True)

    def local_dir(self, key: str) -> Path:
        """A directory object (model, report) on this node's disk, from the cache if there.

        Downloads go to a temporary sibling and are renamed into place, so a reader
        never sees a half-fetched directory; two nodes or threads fetching at once both
        end with a complete copy.
        """
        if not self.remote:
            return self.data_dir / key
        target = self.cache / key
        if target.is_dir():
            return target
        remote = self._path(key)
        if not self.fs.exists(remote):
            raise ObjectStoreError(f"the object store has no {key}")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=target.parent))
        try:
            for path in self.fs.find(remote):
                relative = path[len(remote.rstrip("/")) + 1 :]
                destination = staging / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(path, str(destination))
            try:
                os.rename(staging, target)
            except OSError:  # another fetch won the race: its copy is as good
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    def delete(self, key: str) -> None:
        """The object, and this node's cached copy of it (other nodes' caches keep
        theirs until cleared: docs/operations.md)."""
        path = self._path(key)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)
        if self.remote:
            cached = self.cache / key
            if cached.is_dir():
                shutil.rmtree(cached, ignore_errors=True)
            else:
                cached.unlink(missing_ok=True)


def from_settings(settings: Settings) -> ObjectStore:
    """The store the settings name. A shared bucket needs a shared key: without
    ``SANITAS_ENCRYPTION_KEY`` every node would make its own and read nothing."""
    if settings.storage_url and not settings.encryption_key:
        raise ObjectStoreError(
            "SANITAS_STORAGE_URL is set but SANITAS_ENCRYPTION_KEY is not: nodes that share "
            "a bucket must share the key (32 random bytes, base64)"
        )
    return ObjectStore(settings.data_dir, settings.storage_url or None, settings.storage_options)

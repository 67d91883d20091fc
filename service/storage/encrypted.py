"""Files at rest: uploaded tables encrypted with AES-256-GCM in 1 MiB records.

Streaming both ways, so a gigabyte upload never sits in memory. Each record is
``length (4 bytes) | nonce (12) | ciphertext + tag``; the nonce is the file's random
8-byte prefix plus the record counter, and the last record is flagged in the
associated data, so records cannot be reordered, dropped or truncated unnoticed.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "EncryptedWriter",
    "StorageError",
    "decode_key",
    "decrypt_to",
    "iter_decrypted",
    "key_for",
    "load_key",
    "reencrypt",
    "store_encrypted",
]

logger = logging.getLogger(__name__)
MAGIC = b"SANITAS1"
RECORD = 1 << 20


class StorageError(Exception):
    """An encrypted file is corrupt, truncated or under another key."""


def load_key(configured: str | None, path: Path) -> bytes:
    """The configured key, or the embedded server's own key file (made on first start,
    0600, in a 0700 folder, linked into place whole: two processes starting at once
    read the same complete key)."""
    if configured:
        return decode_key(configured)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        draft = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(base64.urlsafe_b64encode(secrets.token_bytes(32)))
        try:
            os.link(draft, path)
            logger.warning("no SANITAS_ENCRYPTION_KEY: made %s; back it up, apart from the "
                           "data", path)  # fmt: skip
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            draft.unlink()
    return decode_key(path.read_text().strip())


def decode_key(configured: str) -> bytes:
    key = base64.urlsafe_b64decode(configured.encode())
    if len(key) != 32:
        raise ValueError("an encryption key must be 32 bytes, base64-encoded")
    return key


def _nonce(prefix: bytes, counter: int) -> bytes:
    return prefix + struct.pack(">I", counter)


class EncryptedWriter:
    """Write plaintext in any chunk sizes; records go to disk as they fill."""

    def __init__(self, key: bytes, sink: BinaryIO) -> None:
        self._aead, self._sink = AESGCM(key), sink
        self._prefix = secrets.token_bytes(8)
        self._buffer = bytearray()
        self._counter = 0
        sink.write(MAGIC + self._prefix)

    def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) > RECORD:  # keep one record back: it may be the last
            self._emit(bytes(self._buffer[:RECORD]), last=False)
            del self._buffer[:RECORD]

    def close(self) -> None:
        self._emit(bytes(self._buffer), last=True)
        self._buffer.clear()

    def _emit(self, plain: bytes, *, last: bool) -> None:
        sealed = self._aead.encrypt(
            _nonce(self._prefix, self._counter), plain, b"L" if last else b""
        )
        self._sink.write(struct.pack(">I", len(sealed)) + sealed)
        self._counter += 1


def _read_prefix(f: BinaryIO, name: str) -> bytes:
    """The file's nonce prefix, after checking it is one of ours."""
    head = f.read(len(MAGIC) + 8)
    if head[: len(MAGIC)] != MAGIC:
        raise StorageError(f"{name} is not a Sanitas encrypted file")
    return head[len(MAGIC) :]


def _read_sealed(f: BinaryIO, name: str) -> bytes:
    size_bytes = f.read(4)
    if len(size_bytes) < 4:
        raise StorageError(f"{name} is truncated")
    return f.read(struct.unpack(">I", size_bytes)[0])


def iter_decrypted(key: bytes, path: Path) -> Iterator[bytes]:
    aead = AESGCM(key)
    with path.open("rb") as f:
        prefix, counter = _read_prefix(f, path.name), 0
        while True:
            sealed = _read_sealed(f, path.name)
            nonce = _nonce(prefix, counter)
            try:
                plain = aead.decrypt(nonce, sealed, b"")
                last = False
            except InvalidTag:
                try:
                    plain, last = aead.decrypt(nonce, sealed, b"L"), True
                except InvalidTag as e:
                    raise StorageError(f"{path.name} is corrupt or under another key") from e
            yield plain
            counter += 1
            if last:
                return


def key_for(keys: list[bytes], path: Path) -> bytes:
    """The key among ``keys`` that ``path`` is encrypted under (its first record decides).

    During a key rotation files are under the new key or an old one; trying the keys
    on the first record only means a file corrupt further on still fails as corrupt.
    """
    with path.open("rb") as f:
        nonce = _nonce(_read_prefix(f, path.name), 0)
        sealed = _read_sealed(f, path.name)
    for key in keys:
        for associated in (b"", b"L"):
            try:
                AESGCM(key).decrypt(nonce, sealed, associated)
                return key
            except InvalidTag:
                continue
    raise StorageError(f"{path.name} is corrupt or under none of the {len(keys)} keys given")


def reencrypt(old: bytes, new: bytes, source: Path, data_dir: Path, suffix: str) -> Path:
    """``source`` (under ``old``) written again under ``new`` as a fresh dataset file;
    returns its path relative to data_dir. The plaintext exists only in memory, one
    record at a time."""
    return _write_dataset_file(new, iter_decrypted(old, source), data_dir, suffix)


def decrypt_to(key: bytes, source: Path, target: Path) -> None:
    """Plaintext copy for a worker's job directory (deleted when the job ends)."""
    with target.open("wb") as out:
        for chunk in iter_decrypted(key, source):
            out.write(chunk)


def store_encrypted(
    key: bytes, source: BinaryIO, data_dir: Path, suffix: str, *, chunk: int = 1 << 20
) -> tuple[Path, str]:
    """Encrypt ``source`` (from its start) to ``datasets/<random><suffix>.enc`` under data_dir.

    Written as ``.partial`` and renamed when complete, so a crash never leaves a file that
    looks whole (the start-up sweep removes partials). Returns the path relative to
    data_dir and the SHA-256 of the plaintext.
    """
    digest = hashlib.sha256()
    source.seek(0)

    def blocks() -> Iterator[bytes]:
        while block := source.read(chunk):
            digest.update(block)
            yield block

    return _write_dataset_file(key, blocks(), data_dir, suffix), digest.hexdigest()


def _write_dataset_file(
    key: bytes, plaintext: Iterable[bytes], data_dir: Path, suffix: str
) -> Path:
    """Encrypt ``plaintext`` to a fresh ``datasets/<random><suffix>.enc``; its path
    relative to data_dir. Written as ``.partial`` and renamed when complete."""
    relative = Path("datasets") / f"{secrets.token_hex(16)}{suffix}.enc"
    target = data_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    try:
        with partial.open("wb") as sink:
            writer = EncryptedWriter(key, sink)
            for block in plaintext:
                writer.write(block)
            writer.close()
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return relative

"""Taking uploaded images in: NPZ arrays or a ZIP of PNGs in class folders.

Both arrive as ZIP archives, so both are checked as archives first, before a byte is
inflated: entry count, declared sizes, compression ratio (a zip bomb declares far
more than it weighs) and entry names (no ``..``, no absolute paths). Images are then
checked for a consistent size of at most 64 x 64, grayscale or RGB, and a sane count.

What is stored is always one normalized NPZ (``images`` uint8 N x H x W x C,
``labels`` int64, ``classes``), encrypted like tables. PNGs are decoded one at a time
into a disk-backed array, so memory stays bounded whatever the upload's size.
"""

from __future__ import annotations

import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import numpy as np

from service.errors import Problem
from service.storage.encrypted import store_encrypted

__all__ = ["IMAGE_FORMATS", "UPLOAD_TMP_PREFIX", "StoredImages", "store_images"]

IMAGE_FORMATS = ("npz", "zip")
# an upload's unpacking folder in the data directory (``service.jobs.sweep`` removes
# those a killed process left behind)
UPLOAD_TMP_PREFIX = "upload-"
MAX_SIDE = 64
MIN_IMAGES = 100
MAX_IMAGES = 500_000
MAX_ENTRIES = MAX_IMAGES + 1_000
MAX_CLASSES = 1_000  # class names are listed with the dataset: a label of 20,000,000 is no class
CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredImages:
    path: Path  # relative to data_dir
    format: str
    rows: int  # images
    bytes: int
    sha256: str
    schema: dict[str, Any]


def _bad(title: str, detail: str, status: int = 422) -> Problem:
    return Problem(status, title, detail)


def _open_archive(raw: BinaryIO, max_ratio: float, max_inflated: int) -> zipfile.ZipFile:
    raw.seek(0)
    try:
        archive = zipfile.ZipFile(raw)
    except (zipfile.BadZipFile, OSError) as e:
        raise _bad("Malformed Archive", f"the file is not a readable ZIP/NPZ archive: {e}") from e
    entries = archive.infolist()
    if len(entries) > MAX_ENTRIES:
        raise _bad("Too Many Entries", f"the archive has {len(entries):,} entries")
    inflated = 0
    for entry in entries:
        name = PurePosixPath(entry.filename.replace("\\", "/"))
        if name.is_absolute() or ".." in name.parts or entry.filename.startswith("/"):
            raise _bad("Unsafe Archive Entry", f"entry {entry.filename!r} leaves the archive")
        inflated += entry.file_size
        ratio = entry.file_size / max(entry.compress_size, 1)
        if ratio > max_ratio and entry.file_size > CHUNK:
            raise _bad(
                "Zip Bomb",
                f"entry {entry.filename!r} inflates {ratio:,.0f}-fold "
                f"(limit {max_ratio:,.0f}); refused before inflating",
                413,
            )
    if inflated > max_inflated:
        raise _bad(
            "Zip Bomb",
            f"the archive declares {inflated:,} bytes inflated; the limit is {max_inflated:,}",
            413,
        )
    return archive


def _check_shape(height: int, width: int, channels: int) -> None:
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise _bad("Image Too Large", f"images are {height}x{width}; at most 64x64 is supported")
    if channels not in (1, 3):
        raise _bad("Unsupported Channels", f"images have {channels} channels; use 1 or 3")


def _check_count(n: int) -> None:
    if not MIN_IMAGES <= n <= MAX_IMAGES:
        raise _bad("Image Count", f"{n:,} images; an upload needs {MIN_IMAGES:,} to {MAX_IMAGES:,}")


def _read_header(f: BinaryIO, member: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy stream, leaving it at the first data byte."""
    fmt = np.lib.format
    try:
        major, _ = fmt.read_magic(f)
        read = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
        shape, fortran, dtype = read(f)
    except ValueError as e:
        raise _bad("Malformed Array", f"{member} is not a NumPy array: {e}") from e
    if dtype.hasobject:
        raise _bad("Malformed Array", f"{member} holds Python objects; plain numbers only")
    if fortran and len(shape) > 1:
        raise _bad("Malformed Array", f"{member} is in Fortran order; save it C-ordered")
    return tuple(shape), dtype


def _read_npz(archive: zipfile.ZipFile, work: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    names = set(archive.namelist())
    missing = {"images.npy", "labels.npy"} - names
    if missing:
        raise _bad("Missing Arrays", f"the NPZ lacks {sorted(m[:-4] for m in missing)}")
    with archive.open("labels.npy") as f:
        label_shape, label_dtype = _read_header(f, "labels")
    with archive.open("images.npy") as f:
        shape, dtype = _read_header(f, "images")
        if dtype != np.uint8:
            raise _bad("Wrong Image Type", f"images are {dtype}; use uint8 (0-255)")
        if len(shape) == 3:
            shape = (*shape, 1)
        if len(shape) != 4:
            raise _bad("Wrong Image Shape", f"images have shape {shape}; use N x H x W [x C]")
        n, height, width, channels = shape
        _check_shape(height, width, channels)
        _check_count(n)
        if label_shape != (n,) or label_dtype.kind not in "iu":
            raise _bad("Wrong Labels", f"labels are {label_dtype} {label_shape}; use {n} integers")
        images = np.lib.format.open_memmap(work / "images.npy", "w+", np.uint8, shape)
        flat, filled = images.reshape(-1), 0
        while filled < flat.size and (block := f.read(min(CHUNK, flat.size - filled))):
            flat[filled : filled + len(block)] = np.frombuffer(block, np.uint8)
            filled += len(block)
        if filled != flat.size or f.read(1):
            raise _bad("Malformed Array", "images.npy holds a different byte count than its shape")
    with archive.open("labels.npy") as f:
        labels = np.load(f, allow_pickle=False).astype(np.int64)
    if labels.min() < 0:
        raise _bad("Wrong Labels", "labels must be non-negative class numbers")
    if labels.max() >= MAX_CLASSES:
        raise _bad(
            "Too Many Classes",
            f"the largest label is {int(labels.max()):,}; labels must be class numbers "
            f"0 to {MAX_CLASSES - 1:,}",
        )
    classes = [str(v) for v in range(int(labels.max()) + 1)]
    return images, labels, classes


def _read_png_folders(
    archive: zipfile.ZipFile, work: Path
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from PIL import Image, UnidentifiedImageError
    from PIL.Image import DecompressionBombError

    entries = [e for e in archive.infolist() if not e.is_dir()]
    entries = [e for e in entries if not PurePosixPath(e.filename).name.startswith(".")]
    pngs = [e for e in entries if e.filename.lower().endswith(".png")]
    others = [e.filename for e in entries if e not in pngs]
    if others:
        raise _bad("Not PNG", f"the ZIP holds files other than PNGs: {others[:5]}")
    folders = {PurePosixPath(e.filename).parent for e in pngs}
    if any(len(f.parts) != 1 for f in folders):
        raise _bad("Class Folders", "put each PNG in one folder named by its class: CLASS/x.png")
    _check_count(len(pngs))
    if len(folders) > MAX_CLASSES:
        raise _bad("Too Many Classes", f"{len(folders):,} class folders; at most {MAX_CLASSES:,}")
    classes = sorted(f.name for f in folders)
    index = {name: i for i, name in enumerate(classes)}
    images: np.ndarray | None = None
    labels = np.empty(len(pngs), dtype=np.int64)
    for i, entry in enumerate(pngs):
        with archive.open(entry) as f:
            try:
                picture = Image.open(f, formats=["PNG"])
                width, height = picture.size
                _check_shape(height, width, 1)
                mode = "L" if picture.mode in ("1", "L", "I", "I;16", "P") else "RGB"
                pixels = np.asarray(picture.convert(mode), dtype=np.uint8)
            except DecompressionBombError as e:
                # Pillow refuses a header declaring far more pixels than it allows
                raise _bad(
                    "Image Too Large",
                    f"{entry.filename} declares more pixels than any image taken here; at "
                    "most 64x64 is supported",
                    413,
                ) from e
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
                raise _bad("Malformed Image", f"{entry.filename} is not a valid PNG: {e}") from e
        pixels = pixels.reshape(height, width, -1)
        if images is None:
            shape = (len(pngs), *pixels.shape)
            images = np.lib.format.open_memmap(work / "images.npy", "w+", np.uint8, shape)
        if pixels.shape[:2] != images.shape[1:3]:
            raise _bad(
                "Inconsistent Sizes",
                f"{entry.filename} is {height}x{width}; the first image is "
                f"{images.shape[1]}x{images.shape[2]}",
            )
        if pixels.shape[2] != images.shape[3]:
            raise _bad(
                "Inconsistent Channels",
                f"{entry.filename} is {'RGB' if pixels.shape[2] == 3 else 'grayscale'}; "
                "all images must be grayscale or all RGB",
            )
        images[i] = pixels
        labels[i] = index[PurePosixPath(entry.filename).parent.name]
    assert images is not None
    return images, labels, classes


def _write_npz(images: np.ndarray, labels: np.ndarray, classes: list[str], path: Path) -> None:
    """An uncompressed NPZ built from files on disk (images stay disk-backed)."""
    images.flush()  # type: ignore[attr-defined]
    np.save(path.parent / "labels.npy", labels)
    np.save(path.parent / "classes.npy", np.array(classes, dtype=str))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as out:
        for name in ("images.npy", "labels.npy", "classes.npy"):
            out.write(path.parent / name, name)


def store_images(
    raw: BinaryIO,
    fmt: str,
    *,
    key: bytes,
    data_dir: Path,
    max_bytes: int,
    max_ratio: float,
) -> StoredImages:
    """Validate, normalize and write the encrypted NPZ under data_dir/datasets."""
    raw.seek(0, 2)
    size = raw.tell()
    if size > max_bytes:
        raise _bad(
            "Upload Too Large", f"the file has {size:,} bytes; the limit is {max_bytes:,}", 413
        )
    archive = _open_archive(raw, max_ratio, max_inflated=max(4 * max_bytes, 1 << 30))
    with tempfile.TemporaryDirectory(prefix=UPLOAD_TMP_PREFIX, dir=data_dir) as tmp:
        work = Path(tmp)
        read = _read_npz if fmt == "npz" else _read_png_folders
        images, labels, classes = read(archive, work)
        n, height, width, channels = images.shape
        normalized = work / "normalized.npz"
        _write_npz(images, labels, classes, normalized)
        del images
        with normalized.open("rb") as source:
            relative, sha256 = store_encrypted(key, source, data_dir, ".npz")
    schema = {
        "kind": "images",
        "height": int(height),
        "width": int(width),
        "channels": int(channels),
        "classes": classes,
        "columns": [],
    }
    return StoredImages(relative, "npz", int(n), size, sha256, schema)

"""Labeled image sets as the image generators see them: arrays, classes, quantization.

The on-disk form is the NPZ the service stores (``images`` uint8 N x H x W [x C],
``labels`` integers indexing ``classes``); read with ``allow_pickle=False``, so a file
can carry arrays only, never code.
"""

from __future__ import annotations

import gzip
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.errors import TrainingError

__all__ = [
    "ImageDataError",
    "ImageSet",
    "dequantize",
    "grid",
    "load_idx",
    "load_npz",
    "png_bytes",
    "quantize",
    "save_npz",
    "write_images",
]

MAX_SIDE = 64


class ImageDataError(TrainingError):
    """The images cannot be trained on: wrong arrays, sizes or labels, named in the message."""


@dataclass(frozen=True)
class ImageSet:
    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray  # int64 (N,), indexes ``classes``
    classes: list[str]

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ImageDataError(
                f"images must be uint8 N x H x W x C, got {self.images.dtype} {self.images.shape}"
            )
        n, height, width, channels = self.images.shape
        if channels not in (1, 3) or max(height, width) > MAX_SIDE:
            raise ImageDataError(
                f"images must be grayscale or RGB up to {MAX_SIDE}x{MAX_SIDE}, "
                f"got {height}x{width}x{channels}"
            )
        if self.labels.shape != (n,):
            raise ImageDataError(f"{n} images but labels of shape {self.labels.shape}")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ImageDataError(f"labels must index the {len(self.classes)} classes")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(height, width, channels)"""
        _, height, width, channels = self.images.shape
        return int(height), int(width), int(channels)


def load_npz(path: str | Path) -> ImageSet:
    """Read ``images``, ``labels`` and optional ``classes`` (default: the label values)."""
    try:
        with np.load(Path(path), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ImageDataError(f"{path} is not a readable NPZ of arrays: {e}") from e
    if "images" not in arrays or "labels" not in arrays:
        raise ImageDataError(f"{path} needs arrays 'images' and 'labels', has {sorted(arrays)}")
    images, labels = arrays["images"], arrays["labels"]
    if images.ndim == 3:
        images = images[..., None]
    if not np.issubdtype(labels.dtype, np.integer):
        raise ImageDataError(f"labels must be integers, got {labels.dtype}")
    labels = labels.astype(np.int64)
    if "classes" in arrays:
        classes = [str(c) for c in arrays["classes"].tolist()]
    else:
        classes = [str(c) for c in range(int(labels.max(initial=-1)) + 1)]
    return ImageSet(images, labels, classes)


def load_idx(images: str | Path, labels: str | Path, classes: list[str]) -> ImageSet:
    """An images/labels pair of IDX files, gzipped or not: the form MNIST and
    Fashion-MNIST ship in (Debian's ``dataset-fashion-mnist`` among them)."""
    pixels, label_values = _idx_array(images), _idx_array(labels)
    if pixels.ndim != 3 or label_values.ndim != 1 or len(pixels) != len(label_values):
        raise ImageDataError(
            f"{images} and {labels} are not N x H x W images with N labels: "
            f"{pixels.shape}, {label_values.shape}"
        )
    return ImageSet(pixels[..., None], label_values.astype(np.int64), classes)


def _idx_array(path: str | Path) -> np.ndarray:
    """IDX: two zero bytes, type 0x08 (unsigned byte), the rank, big-endian int32 sizes."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise ImageDataError(f"{path} is not an IDX file of unsigned bytes")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=raw[3], offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * len(shape))
    if data.size != math.prod(shape):
        raise ImageDataError(f"{path} holds {data.size} bytes for a {shape} array")
    return data.reshape(shape).copy()  # writable: torch warns on read-only buffers


def save_npz(path: str | Path, data: ImageSet) -> Path:
    path = Path(path)
    np.savez_compressed(
        path, images=data.images, labels=data.labels, classes=np.array(data.classes, dtype=str)
    )
    return path


def quantize(images: np.ndarray, levels: int) -> np.ndarray:
    """uint8 (N, H, W, C) -> uint8 levels (N, C, H, W): a fixed, public map (no data used)."""
    scaled = np.rint(images.astype(np.float32) * ((levels - 1) / 255.0)).astype(np.uint8)
    return np.ascontiguousarray(scaled.transpose(0, 3, 1, 2))


def dequantize(levels_nchw: np.ndarray, levels: int) -> np.ndarray:
    """Levels (N, C, H, W) -> uint8 (N, H, W, C), level 0 black and the top level white."""
    values = np.rint(levels_nchw.astype(np.float32) * (255.0 / (levels - 1)))
    return np.ascontiguousarray(values.clip(0, 255).astype(np.uint8).transpose(0, 2, 3, 1))


def write_images(path: str | Path, data: ImageSet, *, columns: int = 10) -> Path:
    """By extension: ``.npz`` arrays, ``.zip`` of PNGs in class folders, ``.png`` a grid."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return save_npz(path, data)
    if suffix == ".zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for i, (image, label) in enumerate(zip(data.images, data.labels, strict=True)):
                archive.writestr(f"{data.classes[label]}/{i:06d}.png", png_bytes(image))
        return path
    if suffix == ".png":
        path.write_bytes(png_bytes(grid(data.images, columns=columns)))
        return path
    raise ImageDataError(f"{path.name}: write images as .npz, .zip or .png")


def png_bytes(image: np.ndarray) -> bytes:
    """One uint8 (H, W, C) image as PNG (grayscale when C is 1)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, "PNG")
    return buffer.getvalue()


def grid(images: np.ndarray, *, columns: int = 10, pad: int = 1) -> np.ndarray:
    """Tile (N, H, W, C) images into one (rows*H, columns*W, C) picture."""
    n, height, width, channels = images.shape
    rows = max(1, -(-n // columns))
    out = np.full(
        (rows * (height + pad) + pad, columns * (width + pad) + pad, channels), 255, np.uint8
    )
    for k in range(n):
        r, c = divmod(k, columns)
        top, left = pad + r * (height + pad), pad + c * (width + pad)
        out[top : top + height, left : left + width] = images[k]
    return out

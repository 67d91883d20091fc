"""What image generators share: classes from the DP label histogram, sampling in chunks
(by class or in the DP class mix), save and load."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from training.errors import ConditionError
from training.generators.saved import SavedGenerator
from training.images import ImageSet
from training.spec import FitSummary, PrivacyReport

__all__ = ["DEFAULT_IMAGE_CHUNK", "ImageGenerator"]

DEFAULT_IMAGE_CHUNK = 512


class ImageGenerator(SavedGenerator):
    """A trained image generator over the classes its DP label histogram kept."""

    def __init__(
        self,
        *,
        net: torch.nn.Module,
        classes: list[str],
        class_weights: list[float],
        privacy: PrivacyReport,
        summary: FitSummary,
        training: dict[str, Any],
    ) -> None:
        self.net, self.classes, self.class_weights = net, classes, class_weights
        self.privacy, self.summary, self.training = privacy, summary, training

    @property
    def shape(self) -> tuple[int, int, int]:
        cfg: Any = self.net.config
        return cfg.height, cfg.width, cfg.channels

    def class_index(self, label: str | int) -> int:
        """A class by name (``"3"``, ``"ankle boot"``); an int is read as its name."""
        name = str(label)
        if name not in self.classes:
            raise ConditionError(f"label={label!r} is not a class of this model: {self.classes}")
        return self.classes.index(name)

    def draw(self, labels: torch.Tensor, generator: torch.Generator) -> np.ndarray:
        """uint8 images (N, H, W, C) of the given class indices."""
        raise NotImplementedError

    def sample(
        self, n: int, *, label: str | int | None = None, seed: int | None = None
    ) -> ImageSet:
        chunks = list(self.sample_chunks(n, label=label, seed=seed))
        if not chunks:
            height, width, channels = self.shape
            empty = np.zeros((0, height, width, channels), dtype=np.uint8)
            return ImageSet(empty, np.zeros(0, dtype=np.int64), list(self.classes))
        return ImageSet(
            np.concatenate([c.images for c in chunks]),
            np.concatenate([c.labels for c in chunks]),
            list(self.classes),
        )

    def sample_chunks(
        self,
        n: int,
        *,
        label: str | int | None = None,
        seed: int | None = None,
        chunk_size: int = DEFAULT_IMAGE_CHUNK,
    ) -> Iterator[ImageSet]:
        """``n`` images in chunks; ``label`` fixes the class, else the DP class mix."""
        fixed = None if label is None else self.class_index(label)
        seeds = np.random.SeedSequence(seed).spawn(math.ceil(n / chunk_size))
        weights = np.asarray(self.class_weights, dtype=float)
        for i, chunk_seed in enumerate(seeds):
            size = min(chunk_size, n - i * chunk_size)
            torch_seed, numpy_seed = chunk_seed.generate_state(2)
            if fixed is None:
                rng = np.random.default_rng(int(numpy_seed))
                labels = rng.choice(len(self.classes), size=size, p=weights / weights.sum())
            else:
                labels = np.full(size, fixed)
            generator = torch.Generator().manual_seed(int(torch_seed))
            images = self.draw(torch.from_numpy(labels.astype(np.int64)), generator)
            yield ImageSet(images, labels.astype(np.int64), list(self.classes))

    def modality_config(self) -> dict[str, Any]:
        return {"kind": "images", "classes": self.classes, "class_weights": self.class_weights}

    @classmethod
    def from_config(cls, config: dict[str, Any], net: torch.nn.Module, **common: Any) -> Any:
        return cls(
            net=net, classes=[str(c) for c in config["classes"]],
            class_weights=[float(w) for w in config["class_weights"]], **common,
        )  # fmt: skip

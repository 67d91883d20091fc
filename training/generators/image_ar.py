"""image-ar: the trained class-conditional PixelCNN (sample, score, save, load).

Fitting lives in ``image_ar_fit`` so that a sampler imports neither Lightning nor
Opacus. Class names and the class mix of unconditional samples come from the DP
label histogram of the fit, never from raw counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.artifacts import load_artifact, save_artifact
from training.errors import ArtifactError, ConditionError
from training.images import ImageSet, dequantize, quantize
from training.models.pixelcnn import (
    PixelCNN,
    PixelCNNConfig,
    generate_images,
    image_log_likelihood,
)
from training.spec import FitSummary, PrivacyReport

__all__ = ["DEFAULT_IMAGE_CHUNK", "IMAGE_AR", "ImageARGenerator"]

IMAGE_AR = "image-ar"
DEFAULT_IMAGE_CHUNK = 512


class ImageARGenerator:
    """A trained image-ar model over the classes its DP label histogram kept."""

    name = IMAGE_AR

    def __init__(
        self,
        *,
        net: PixelCNN,
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
        cfg = self.net.config
        return cfg.height, cfg.width, cfg.channels

    def class_index(self, label: str | int) -> int:
        """A class by name (``"3"``, ``"ankle boot"``); an int is read as its name."""
        name = str(label)
        if name not in self.classes:
            raise ConditionError(f"label={label!r} is not a class of this model: {self.classes}")
        return self.classes.index(name)

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
            drawn = generate_images(
                self.net, torch.from_numpy(labels.astype(np.int64)), generator=generator
            )
            yield ImageSet(
                dequantize(drawn.numpy(), self.net.config.levels),
                labels.astype(np.int64),
                list(self.classes),
            )

    def log_likelihood(self, data: ImageSet) -> np.ndarray:
        """Log-probability of each image given its class (an audit's score)."""
        if data.shape != self.shape:
            raise ConditionError(f"images of shape {data.shape}; the model makes {self.shape}")
        names = [data.classes[i] for i in data.labels.tolist()]
        label = torch.tensor([self.class_index(name) for name in names], dtype=torch.long)
        levels = torch.from_numpy(quantize(data.images, self.net.config.levels)).long()
        scores = [
            image_log_likelihood(self.net, levels[i : i + 256], label[i : i + 256])
            for i in range(0, len(levels), 256)
        ]
        return torch.cat(scores).numpy() if scores else np.zeros(0)

    def save(self, directory: str | Path) -> Path:
        config = {
            "generator": IMAGE_AR,
            "kind": "images",
            "model": vars(self.net.config),
            "classes": self.classes,
            "class_weights": self.class_weights,
            "privacy": self.privacy.model_dump(mode="json"),
            "summary": self.summary.model_dump(mode="json"),
            "training": self.training,
        }
        return save_artifact(Path(directory), config=config, state=self.net.state_dict())

    @classmethod
    def load(cls, directory: str | Path) -> ImageARGenerator:
        config, state = load_artifact(Path(directory))
        try:
            net = PixelCNN(PixelCNNConfig(**config["model"]))
            net.load_state_dict(state)
            return cls(
                net=net.eval(),
                classes=[str(c) for c in config["classes"]],
                class_weights=[float(w) for w in config["class_weights"]],
                privacy=PrivacyReport.model_validate(config["privacy"]),
                summary=FitSummary.model_validate(config["summary"]),
                training=config.get("training", {}),
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise ArtifactError(f"{directory} does not hold a valid {IMAGE_AR} model: {e}") from e

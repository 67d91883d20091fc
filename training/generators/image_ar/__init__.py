"""image-ar: the trained class-conditional PixelCNN (sample, score, save, load).

Fitting lives in ``recipe`` so that a sampler imports neither Lightning nor
Opacus. Class names and the class mix of unconditional samples come from the DP
label histogram of the fit, never from raw counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from training.errors import ConditionError
from training.generators.image_ar.network import (
    PixelCNN,
    PixelCNNConfig,
    generate_images,
    image_log_likelihood,
)
from training.generators.image_generator import DEFAULT_IMAGE_CHUNK, ImageGenerator
from training.images import ImageSet, dequantize, quantize

__all__ = ["ARTIFACT", "DEFAULT_IMAGE_CHUNK", "IMAGE_AR", "ImageARGenerator"]

IMAGE_AR = "image-ar"


class ImageARGenerator(ImageGenerator):
    """A trained image-ar model over the classes its DP label histogram kept."""

    name = IMAGE_AR
    net: PixelCNN

    def draw(self, labels: torch.Tensor, generator: torch.Generator) -> np.ndarray:
        drawn = generate_images(self.net, labels, generator=generator)
        return dequantize(drawn.numpy(), self.net.config.levels)

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

    @classmethod
    def build_net(cls, model: dict[str, Any]) -> PixelCNN:
        return PixelCNN(PixelCNNConfig(**model))


ARTIFACT = ImageARGenerator

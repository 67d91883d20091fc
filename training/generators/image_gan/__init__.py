"""image-gan: the trained class-conditional DCGAN (sample, save, load).

Fitting lives in ``recipe``; sampling is one generator pass per chunk.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from training.generators.image_gan.network import DCGANConfig, ImageGeneratorNet
from training.generators.image_generator import ImageGenerator

__all__ = ["ARTIFACT", "IMAGE_GAN", "ImageGANGenerator"]

IMAGE_GAN = "image-gan"


class ImageGANGenerator(ImageGenerator):
    name = IMAGE_GAN
    net: ImageGeneratorNet

    @torch.no_grad()
    def draw(self, labels: torch.Tensor, generator: torch.Generator) -> np.ndarray:
        noise = torch.randn(len(labels), self.net.config.noise_dim, generator=generator)
        images = self.net(noise, labels).permute(0, 2, 3, 1)  # (N, H, W, C)
        return (images * 255).round().clamp(0, 255).to(torch.uint8).numpy()

    @classmethod
    def build_net(cls, model: dict[str, Any]) -> ImageGeneratorNet:
        return ImageGeneratorNet(DCGANConfig(**model))


ARTIFACT = ImageGANGenerator

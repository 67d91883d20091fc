"""image-gan's fit recipe: a DCGAN whose discriminator alone sees real images.

Under DP each discriminator step is one DP-SGD step on a Poisson sample of real images
beside as many fakes, every image's gradient clipped (hooks: GroupNorm and convolutions
need real per-sample gradients). The generator learns only through the private
discriminator (post-processing); the classes of its fakes are drawn from the DP label
histogram.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from training.generators.image_gan.network import (
    DCGANConfig,
    ImageDiscriminator,
    ImageGeneratorNet,
)
from training.pipeline.gan_module import GANModule, discriminator_optimizer, gan_networks
from training.pipeline.images import PreparedImages
from training.pipeline.recipe import Networks, Recipe
from training.spec import TrainSpec

__all__ = ["RECIPE", "ImageGANModule", "auto_batch_size", "auto_epochs"]


# Under DP the number of discriminator steps, not the batch, is what a GAN runs short of:
# with many images the noise multiplier is already small at a small batch (z 0.39 for
# Fashion-MNIST's 60,000 at epsilon 10, batch 64), so a small batch buys the most steps
# per CPU second. Fashion-MNIST at epsilon 10: batch 64 for 2,812 steps gave TSTR/TRTR
# 0.81 and 0.85 (two seeds) in 185 s; batch 512 for 351 steps 0.54 in 417 s.
DP_BATCH_SIZE = 64
DP_STEPS = 3_000


def auto_batch_size(rows: float, dp: bool) -> int:
    return DP_BATCH_SIZE if dp else 128


def auto_epochs(rows: float, dp: bool) -> int:
    """About ``DP_STEPS`` discriminator steps under DP, at most 100 epochs (the 1,400
    digits: 100 epochs, 2,200 steps; 60,000 images: 3 epochs, 2,800 steps)."""
    if dp:
        return int(np.clip(round(DP_STEPS * DP_BATCH_SIZE / max(rows, 1)), 1, 100))
    return int(np.clip(round(300_000 / max(rows, 1)), 30, 300))


class ImageGANModule(GANModule):
    """Fakes of classes drawn from the DP label histogram; labels ride along."""

    def __init__(self, *args: Any, class_weights: torch.Tensor, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.class_weights = class_weights

    def real(self, batch: list[torch.Tensor]) -> tuple[torch.Tensor, Any] | None:
        images, labels = batch
        if images.shape[0] == 0:
            return None
        return images.permute(0, 3, 1, 2).float() / 255.0, labels

    def fakes(self, n: int) -> tuple[torch.Tensor, Any, torch.Tensor]:
        labels = torch.multinomial(self.class_weights, n, replacement=True).to(self.device)
        noise = torch.randn(n, self.generator.config.noise_dim, device=self.device)
        return self.generator(noise, labels), labels, torch.zeros((), device=self.device)

    def score(self, x: torch.Tensor, extra: Any) -> torch.Tensor:
        return self.discriminator(x, extra)


def build(prepared: PreparedImages, spec: TrainSpec, batch_size: int) -> Networks:
    dp = spec.dp.enabled
    height, width, channels = prepared.shape
    config = DCGANConfig(
        height=height, width=width, channels=channels, classes=len(prepared.classes),
        hidden=spec.hidden_size or 32,
    )  # fmt: skip
    generator, discriminator = ImageGeneratorNet(config), ImageDiscriminator(config)
    lr = spec.learning_rate or (5e-4 if dp else 2e-4)
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    weights = torch.tensor(prepared.histogram.counts, dtype=torch.float)
    return gan_networks(
        ImageGANModule, generator, discriminator, g_optimizer=g_optimizer,
        d_optimizer=discriminator_optimizer(lr, dp=dp, betas=(0.5, 0.999)),
        fake_batch=batch_size, class_weights=weights,
    )  # fmt: skip


RECIPE = Recipe(
    batch_size=auto_batch_size, epochs=auto_epochs, build=build, public_metadata=("pixel range",)
)

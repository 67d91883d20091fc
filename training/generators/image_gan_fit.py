"""Fit image-gan: the DP label histogram (as for image-ar), then a DCGAN whose
discriminator alone sees real images, under DP-SGD.

Privacy, end to end: the label histogram is image-ar's (one Gaussian release with the
preprocessing share; DP partition selection of the classes unless declared public).
Each discriminator step is one DP-SGD step on a Poisson sample of real images beside
as many fakes, every image's gradient clipped (hooks: GroupNorm and convolutions need
real per-sample gradients), noise added; the accountant counts these steps. The
generator learns only through the private discriminator (post-processing); the
classes of its fakes are drawn from the DP histogram.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import TensorDataset

from training.canaries import ImagePlanter
from training.generators.fit_common import account
from training.generators.gan_training import GANModule, run_gan
from training.generators.image_ar_fit import kept_images
from training.generators.image_gan import IMAGE_GAN, ImageGANGenerator
from training.generators.tabular_ar_fit import EpochProgress
from training.images import ImageSet
from training.models.dcgan import DCGANConfig, ImageDiscriminator, ImageGeneratorNet
from training.spec import TrainSpec

__all__ = ["fit_image_gan"]

logger = logging.getLogger(__name__)


# Under DP the number of discriminator steps, not the batch, is what a GAN runs short of:
# with many images the noise multiplier is already small at a small batch (z 0.39 for
# Fashion-MNIST's 60,000 at epsilon 10, batch 64), so a small batch buys the most steps
# per CPU second. Fashion-MNIST at epsilon 10: batch 64 for 2,812 steps gave TSTR/TRTR
# 0.81 and 0.85 (two seeds) in 185 s; batch 512 for 351 steps 0.54 in 417 s.
DP_BATCH_SIZE = 64
DP_STEPS = 3_000


def auto_batch_size(rows: float, *, dp: bool) -> int:
    return DP_BATCH_SIZE if dp else 128


def auto_epochs(rows: float, *, dp: bool) -> int:
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


def fit_image_gan(
    data: ImageSet,
    spec: TrainSpec,
    *,
    public_classes: bool = False,
    progress: EpochProgress | None = None,
    plant: ImagePlanter | None = None,
) -> ImageGANGenerator:
    """Fit image-gan on ``data``; every look at it is charged to ``spec.dp``."""
    started = time.perf_counter()
    dp = spec.dp
    histogram, images, labels = kept_images(
        data, spec, public_classes=public_classes, generator=IMAGE_GAN, plant=plant
    )
    dataset = TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))
    rows = max(histogram.rows, 1.0)
    batch_size = spec.batch_size or auto_batch_size(rows, dp=dp.enabled)
    epochs = spec.epochs or auto_epochs(rows, dp=dp.enabled)
    pl.seed_everything(spec.seed, workers=False, verbose=False)
    height, width, channels = data.shape
    config = DCGANConfig(
        height=height, width=width, channels=channels, classes=len(histogram.classes),
        hidden=spec.hidden_size or 32,
    )  # fmt: skip
    generator, discriminator = ImageGeneratorNet(config), ImageDiscriminator(config)
    lr = spec.learning_rate or (5e-4 if dp.enabled else 2e-4)
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    # SGD for a DP discriminator: Adam random-walks noise-dominated weights (tabular-gan)
    d_optimizer: torch.optim.Optimizer = (
        torch.optim.SGD(discriminator.parameters(), lr=0.3, momentum=0.5)
        if dp.enabled
        else torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    )
    weights = torch.tensor(histogram.counts, dtype=torch.float)
    budget = histogram.budget

    def make_module(
        discriminator: torch.nn.Module, optimizer: torch.optim.Optimizer, backward: Any,
        hooks: Any,
    ) -> ImageGANModule:  # fmt: skip
        return ImageGANModule(
            generator, discriminator, optimizer, g_optimizer, class_weights=weights,
            fake_batch=batch_size, d_backward=backward, hooks=hooks,
        )  # fmt: skip

    run = run_gan(
        make_module, discriminator, d_optimizer, dataset, spec=spec, budget=budget, rows=rows,
        batch_size=batch_size, epochs=epochs, grad_sample_mode="hooks", progress=progress,
    )  # fmt: skip
    z, sample_rate, steps, module = run.noise_multiplier, run.sample_rate, run.steps, run.module
    public = ["pixel range", *(["classes"] if public_classes else [])]
    private_meta = ["class frequencies", *([] if public_classes else ["classes"])]
    privacy_report, summary = account(
        IMAGE_GAN, dp, budget, noise_multiplier=z, sample_rate=sample_rate, steps=steps,
        epochs=epochs, batch_size=batch_size, started=started,
        columns=height * width * channels, public_metadata=public,
        private_metadata=private_meta,
    )  # fmt: skip
    record: dict[str, Any] = {"spec": spec.model_dump(mode="json")}
    if not dp.enabled:  # losses of a DP run were never noised: kept out of its artifact
        record["epoch_losses"] = module.epoch_losses
    generator.cpu().eval()
    total = sum(histogram.counts)
    return ImageGANGenerator(
        net=generator, classes=histogram.classes,
        class_weights=[c / total for c in histogram.counts],
        privacy=privacy_report, summary=summary, training=record,
    )  # fmt: skip

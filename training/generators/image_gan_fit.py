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
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from training import privacy
from training.errors import TrainingError
from training.generators.fit_common import account
from training.generators.image_ar_fit import MIN_IMAGES, private_label_histogram
from training.generators.image_gan import IMAGE_GAN, ImageGANGenerator
from training.generators.tabular_ar_fit import EpochProgress, _ProgressCallback, _trainer
from training.images import ImageSet
from training.models.dcgan import DCGANConfig, ImageDiscriminator, ImageGeneratorNet
from training.spec import TrainSpec

__all__ = ["fit_image_gan"]

logger = logging.getLogger(__name__)


def auto_batch_size(rows: float, *, dp: bool) -> int:
    """About 1/25 of the images per step under DP (64 to 512): a GAN needs many steps."""
    return int(np.clip(round(rows / 25), 64, 512)) if dp else 128


def auto_epochs(rows: float, *, dp: bool) -> int:
    return 100 if dp else int(np.clip(round(300_000 / max(rows, 1)), 30, 300))


class ImageGANModule(pl.LightningModule):
    """One discriminator step (DP-SGD under DP) and one generator step per batch."""

    def __init__(
        self,
        generator: ImageGeneratorNet,
        discriminator: torch.nn.Module,
        d_optimizer: torch.optim.Optimizer,
        g_optimizer: torch.optim.Optimizer,
        *,
        class_weights: torch.Tensor,
        fake_batch: int,
        d_backward: Any,
        hooks: Any = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.generator, self.discriminator = generator, discriminator
        self._optimizers = (d_optimizer, g_optimizer)
        self.class_weights, self.fake_batch = class_weights, fake_batch
        self.d_backward, self.hooks = d_backward, hooks
        self.epoch_losses: list[float] = []
        self._running: list[float] = []

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return list(self._optimizers)

    def _fakes(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.multinomial(self.class_weights, n, replacement=True).to(self.device)
        noise = torch.randn(n, self.generator.config.noise_dim, device=self.device)
        return self.generator(noise, labels), labels

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        d_optimizer, g_optimizer = self.optimizers()  # type: ignore[attr-defined]
        d_optimizer.zero_grad()
        if images.shape[0] == 0:  # Poisson sampling at batch sizes >= 64: p < e^-64
            return
        real = images.permute(0, 3, 1, 2).float() / 255.0
        with torch.no_grad():
            fakes, fake_labels = self._fakes(self.fake_batch)
        scores = self.discriminator(torch.cat([real, fakes]), torch.cat([labels, fake_labels]))
        targets = torch.cat([torch.ones(len(real)), torch.zeros(len(fakes))]).to(scores)
        self.d_backward(F.binary_cross_entropy_with_logits(scores, targets, reduction="none"))
        d_optimizer.step()

        if self.hooks is not None:
            self.hooks(False)
        fakes, fake_labels = self._fakes(self.fake_batch)
        g_loss = F.softplus(-self.discriminator(fakes, fake_labels)).mean()
        params = list(self.generator.parameters())
        for p, grad in zip(params, torch.autograd.grad(g_loss, params), strict=True):
            p.grad = grad
        g_optimizer.step()
        g_optimizer.zero_grad()
        if self.hooks is not None:
            self.hooks(True)
        self._running.append(float(g_loss.detach()))

    def on_train_epoch_end(self) -> None:
        if self._running:
            self.epoch_losses.append(sum(self._running) / len(self._running))
        self._running = []


def fit_image_gan(
    data: ImageSet,
    spec: TrainSpec,
    *,
    public_classes: bool = False,
    progress: EpochProgress | None = None,
) -> ImageGANGenerator:
    """Fit image-gan on ``data``; every look at it is charged to ``spec.dp``."""
    started = time.perf_counter()
    if len(data) < MIN_IMAGES:
        raise TrainingError(f"{len(data)} images; image-gan needs at least {MIN_IMAGES}")
    dp = spec.dp
    histogram = private_label_histogram(
        data, dp, public_classes=public_classes, rng=np.random.default_rng()
    )
    kept = [data.classes.index(c) for c in histogram.classes]
    remap = np.full(len(data.classes), -1, dtype=np.int64)
    remap[kept] = np.arange(len(kept))
    labels = remap[data.labels]
    rows_kept = labels >= 0  # images of classes DP selection dropped are not trained on
    dataset = TensorDataset(
        torch.from_numpy(data.images[rows_kept]), torch.from_numpy(labels[rows_kept])
    )
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
    if dp.enabled:
        assert dp.epsilon is not None
        plan = privacy.plan_dp_sgd(
            dataset, batch_size=batch_size, rows=rows, epochs=epochs, target_epsilon=dp.epsilon,
            delta=budget.delta_accountant, prior=budget.history, accountant=dp.accountant,
        )  # fmt: skip
        loader: DataLoader[Any] = plan.loader
        sample_rate, steps, z = plan.sample_rate, plan.steps, plan.noise_multiplier
        private = privacy.make_private(
            module=discriminator, optimizer=d_optimizer, noise_multiplier=z,
            max_grad_norm=dp.max_grad_norm, expected_batch_size=2 * batch_size,
            sample_rate=sample_rate, accountant=dp.accountant, prior=budget.history,
            grad_sample_mode="hooks",
        )  # fmt: skip
        wrapped = private.module

        def hooks(on: bool) -> None:
            wrapped.enable_hooks() if on else wrapped.disable_hooks()  # type: ignore[operator]

        module = ImageGANModule(
            generator, wrapped, private.optimizer, g_optimizer, class_weights=weights,
            fake_batch=batch_size, d_backward=private.backward, hooks=hooks,
        )  # fmt: skip

        def spent() -> float | None:
            return privacy.accountant_epsilon(private.accountant, delta=budget.delta_accountant)

        logger.info("DP discriminator: noise=%.3f rate=%.4f steps=%d", z, sample_rate, steps)
    else:
        seeded = torch.Generator().manual_seed(spec.seed)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=seeded)
        steps, z, sample_rate = len(loader) * epochs, None, None
        module = ImageGANModule(
            generator, discriminator, d_optimizer, g_optimizer, class_weights=weights,
            fake_batch=batch_size, d_backward=lambda loss: loss.mean().backward(),
        )  # fmt: skip

        def spent() -> float | None:
            return None

    callbacks: list[pl.Callback] = [_ProgressCallback(epochs, progress, spent)] if progress else []
    _trainer(spec, epochs, callbacks).fit(module, train_dataloaders=loader)
    if dp.enabled:
        history = private.accountant.history
        steps = sum(s for *_, s in history) - sum(s for *_, s in budget.history)
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

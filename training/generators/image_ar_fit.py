"""Fit image-ar: a DP label histogram, then the PixelCNN under DP-SGD, in Lightning.

Privacy, end to end: the only data-dependent preprocessing is the label histogram
(which classes exist and how common each is). It is one Gaussian release with the
run's preprocessing share; without ``public_classes`` a class enters the model only if
its noisy count passes the partition-selection threshold (a class of one image shows
with probability at most ``delta_selection``). Intensity quantization is a fixed map.
DP-SGD's noise is then solved for the composed epsilon, as for tables.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from training import privacy
from training.budget import SELECTION_DELTA_SHARE, PreprocessingBudget
from training.canaries import ImagePlanter
from training.distributed import DPSGDRun, train_ddp
from training.dp import mechanisms as mech
from training.dp.secret_random import secret_numpy_rng
from training.errors import TrainingError
from training.generators.any_order_module import PerRowLossModule, mean_backward
from training.generators.fit_common import account
from training.generators.image_ar import IMAGE_AR, ImageARGenerator
from training.generators.tabular_ar_fit import EpochProgress, _ProgressCallback, _trainer
from training.images import ImageSet, quantize
from training.models.pixelcnn import PixelCNN, PixelCNNConfig, per_image_loss
from training.spec import DPConfig, TrainSpec

__all__ = ["LabelHistogram", "fit_image_ar", "private_label_histogram"]

logger = logging.getLogger(__name__)
MIN_IMAGES = 100
GRAD_SAMPLE_MODE = "hooks"  # Opacus' per-sample gradient mode for the PixelCNN


class LabelHistogram:
    """The classes kept and their (noisy, clipped) counts; ``rows`` is their DP sum."""

    def __init__(self, classes: list[str], counts: list[float], budget: PreprocessingBudget):
        self.classes, self.counts, self.budget = classes, counts, budget
        self.planted = 0  # canaries trained on beside the images (their count is public)

    @property
    def rows(self) -> float:
        return float(sum(self.counts)) + self.planted


def _budget(dp: DPConfig, *, public_classes: bool) -> PreprocessingBudget:
    if dp.epsilon is None:
        return PreprocessingBudget(1, 0.0, 0.0, 0.0, 0.0)
    delta_selection = 0.0 if public_classes else dp.delta * SELECTION_DELTA_SHARE
    delta_accountant = dp.delta - delta_selection
    z = privacy.solve_preprocessing_noise(
        epsilon=dp.epsilon * dp.preprocessing_share, delta=delta_accountant,
        accountant=dp.accountant,
    )  # fmt: skip
    return PreprocessingBudget(1, z, z, delta_selection, delta_accountant)


def private_label_histogram(
    data: ImageSet, dp: DPConfig, *, public_classes: bool, rng: np.random.Generator
) -> LabelHistogram:
    """One Gaussian histogram of the labels (each image counts once: sensitivity 1)."""
    budget = _budget(dp, public_classes=public_classes)
    noisy = mech.noisy_histogram(data.labels, len(data.classes), sigma=budget.sigma, rng=rng)
    if public_classes:
        keep = np.ones(len(noisy), dtype=bool)
    else:
        keep = noisy > mech.partition_threshold(budget.sigma, budget.delta_selection)
    classes = [c for c, k in zip(data.classes, keep, strict=True) if k]
    if not classes:
        raise TrainingError(
            f"no class of {len(data)} images passed DP selection (noise sigma "
            f"{budget.sigma:.1f}): add images, raise epsilon or declare the classes public"
        )
    counts = [max(float(c), 1.0) for c, k in zip(noisy, keep, strict=True) if k]
    return LabelHistogram(classes, counts, budget)


def kept_images(
    data: ImageSet,
    spec: TrainSpec,
    *,
    public_classes: bool,
    generator: str,
    plant: ImagePlanter | None = None,
) -> tuple[LabelHistogram, np.ndarray, np.ndarray]:
    """The DP label histogram, and the images of the classes it kept with their labels
    renumbered over those classes (images of dropped classes are not trained on).

    ``plant`` (an audit's canaries) sees only the kept classes, the shape and the DP
    row count, after the histogram was released from the real images alone; what it
    returns is trained on beside them.
    """
    if len(data) < MIN_IMAGES:
        raise TrainingError(f"{len(data)} images; {generator} needs at least {MIN_IMAGES}")
    histogram = private_label_histogram(
        data, spec.dp, public_classes=public_classes, rng=secret_numpy_rng()
    )
    kept = [data.classes.index(c) for c in histogram.classes]
    remap = np.full(len(data.classes), -1, dtype=np.int64)
    remap[kept] = np.arange(len(kept))
    labels = remap[data.labels]
    images, labels = data.images[labels >= 0], labels[labels >= 0]
    if plant is not None:
        extra, extra_labels = plant(histogram.classes, data.shape, histogram.rows)
        images = np.concatenate([images, extra])
        labels = np.concatenate([labels, extra_labels.astype(labels.dtype)])
        histogram.planted = len(extra)
    return histogram, images, labels


def auto_batch_size(rows: float, *, dp: bool) -> int:
    """Under DP about 1/5 of the images per step (64 to 2,048): noise averages out."""
    return int(np.clip(round(rows / 5), 64, 2048)) if dp else 128


def auto_epochs(rows: float, *, dp: bool) -> int:
    """80 under DP: 1,400 digits at epsilon 10 reached TSTR 0.88 (of 0.98) at 80 epochs
    and learning rate 1e-2, 0.35 at 40 epochs and 3e-3."""
    return 80 if dp else int(np.clip(round(200_000 / max(rows, 1)), 10, 60))


def auto_width(*, dp: bool) -> tuple[int, int]:
    """(hidden channels, layers): narrow under DP, where noise grows with the parameters."""
    return (32, 4) if dp else (64, 4)


class ImageModule(PerRowLossModule):
    """One DP-SGD (or plain) step per batch on per-image losses."""

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        levels, label = batch[0].long(), batch[1]
        optimizer = self.optimizers()
        assert not isinstance(optimizer, list)
        optimizer.zero_grad()
        if levels.shape[0] == 0:  # Poisson sampling at batch sizes >= 64: probability < e^-64
            self.step_empty(optimizer)
            return
        self.step(optimizer, per_image_loss(self.net(levels, label), levels))


def _image_rank(
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    private: privacy.PrivateTraining,
    rank: int,
    *,
    total_steps: int,
) -> ImageModule:
    """The Lightning module of one DP-SGD process."""
    return ImageModule(
        module, optimizer, backward=private.backward, empty_backward=private.empty_backward,
        total_steps=total_steps,
    )  # fmt: skip


def fit_image_ar(
    data: ImageSet,
    spec: TrainSpec,
    *,
    public_classes: bool = False,
    progress: EpochProgress | None = None,
    plant: ImagePlanter | None = None,
) -> ImageARGenerator:
    """Fit image-ar on ``data``; every look at it is charged to ``spec.dp``."""
    started = time.perf_counter()
    dp = spec.dp
    histogram, images, kept_labels = kept_images(
        data, spec, public_classes=public_classes, generator=IMAGE_AR, plant=plant
    )
    levels = torch.from_numpy(quantize(images, spec.levels))
    label_tensor = torch.from_numpy(kept_labels)
    rows = max(histogram.rows, 1.0)
    batch_size = spec.batch_size or auto_batch_size(rows, dp=dp.enabled)
    epochs = spec.epochs or auto_epochs(rows, dp=dp.enabled)
    pl.seed_everything(spec.seed, workers=False, verbose=False)
    height, width, channels = data.shape
    hidden, layers = auto_width(dp=dp.enabled)
    config = PixelCNNConfig(
        height=height, width=width, channels=channels, levels=spec.levels,
        classes=len(histogram.classes), hidden=spec.hidden_size or hidden,
        layers=spec.depth or layers,
    )  # fmt: skip
    net = PixelCNN(config)
    lr = spec.learning_rate or (1e-2 if dp.enabled else 3e-3)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    dataset = TensorDataset(levels, label_tensor)
    budget = histogram.budget
    callbacks: list[pl.Callback] = []
    epoch_losses: list[float] = []
    if dp.enabled:
        assert dp.epsilon is not None
        plan = privacy.plan_dp_sgd(
            dataset, batch_size=batch_size, rows=rows, epochs=epochs, target_epsilon=dp.epsilon,
            delta=budget.delta_accountant, prior=budget.history, accountant=dp.accountant,
        )  # fmt: skip
        sample_rate, steps, z = plan.sample_rate, plan.steps, plan.noise_multiplier
        logger.info("DP-SGD: noise=%.3f sample_rate=%.4f steps=%d", z, sample_rate, steps)
        if spec.devices > 1:
            run = DPSGDRun(
                noise_multiplier=z, sample_rate=sample_rate, epochs=epochs,
                batch_size=batch_size, max_grad_norm=dp.max_grad_norm, accountant=dp.accountant,
                prior=budget.history, delta=budget.delta_accountant, learning_rate=lr,
                grad_sample_mode=GRAD_SAMPLE_MODE, accelerator=spec.accelerator,
                devices=spec.devices,
            )  # fmt: skip
            factory = functools.partial(_image_rank, total_steps=steps)
            results = train_ddp(net, (levels, label_tensor), run, factory, progress=progress)
            steps = privacy.steps_beyond(results[0].history, budget.history)
        else:
            private = privacy.make_private(
                module=net, optimizer=optimizer, noise_multiplier=z,
                max_grad_norm=dp.max_grad_norm, expected_batch_size=batch_size,
                sample_rate=sample_rate, accountant=dp.accountant, prior=budget.history,
                grad_sample_mode=GRAD_SAMPLE_MODE, device=privacy.noise_device(spec.accelerator),
            )  # fmt: skip
            module = _image_rank(private.module, private.optimizer, private, 0, total_steps=steps)

            def spent() -> float | None:
                return privacy.accountant_epsilon(private.accountant, delta=budget.delta_accountant)

            if progress:
                callbacks.append(_ProgressCallback(epochs, progress, spent))
            _trainer(spec, epochs, callbacks).fit(module, train_dataloaders=plan.loader)
            steps = privacy.steps_beyond(private.accountant.history, budget.history)
    else:
        generator = torch.Generator().manual_seed(spec.seed)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator)
        steps, z, sample_rate = len(loader) * epochs, None, None
        module = ImageModule(net, optimizer, backward=mean_backward, total_steps=steps)
        if progress:
            callbacks.append(_ProgressCallback(epochs, progress, lambda: None))
        _trainer(spec, epochs, callbacks).fit(module, train_dataloaders=loader)
        epoch_losses = module.epoch_losses
    public = ["pixel levels", *(["classes"] if public_classes else [])]
    private_meta = ["class frequencies", *([] if public_classes else ["classes"])]
    privacy_report, summary = account(
        IMAGE_AR, dp, budget, noise_multiplier=z, sample_rate=sample_rate, steps=steps,
        epochs=epochs, batch_size=batch_size, started=started,
        columns=height * width * channels, public_metadata=public,
        private_metadata=private_meta,
    )  # fmt: skip
    record: dict[str, Any] = {"spec": spec.model_dump(mode="json")}
    if not dp.enabled:  # losses are unnoised averages over real images: kept out of DP runs
        record["epoch_losses"] = epoch_losses
    net.cpu().eval()
    total = sum(histogram.counts)
    return ImageARGenerator(
        net=net, classes=histogram.classes,
        class_weights=[c / total for c in histogram.counts],
        privacy=privacy_report, summary=summary, training=record,
    )  # fmt: skip

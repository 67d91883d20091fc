"""The image modality: the DP label histogram before training, the artifact after.

The only data-dependent preprocessing of an image set is its label histogram (which
classes exist and how common each is): one Gaussian release with the run's
preprocessing share. Without ``public_classes`` a class enters the model only if its
noisy count passes the partition-selection threshold (a class of one image shows with
probability at most ``delta_selection``). Images of dropped classes are not trained
on. Intensity quantization (a PixelCNN's) is a fixed map, the generator's own business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from training.budget import PreprocessingBudget, plan_label_histogram
from training.canaries import ImagePlanter
from training.dp import mechanisms as mech
from training.dp.secret_random import secret_numpy_rng
from training.errors import TrainingError
from training.images import ImageSet
from training.pipeline.accounting import RunFacts, account
from training.spec import DPConfig, TrainSpec

__all__ = [
    "MIN_IMAGES",
    "LabelHistogram",
    "PreparedImages",
    "build_image_generator",
    "prepare_images",
    "private_label_histogram",
]

MIN_IMAGES = 100


@dataclass(frozen=True)
class LabelHistogram:
    """The classes kept and their (noisy, clipped) counts."""

    classes: list[str]
    counts: list[float]
    budget: PreprocessingBudget


@dataclass(frozen=True)
class PreparedImages:
    """Images of the kept classes, labels renumbered over them, and the DP row count."""

    histogram: LabelHistogram
    images: np.ndarray  # (N, H, W, C) uint8, canaries included
    labels: np.ndarray  # (N,) indices into histogram.classes
    shape: tuple[int, int, int]
    planted: int  # canaries among them (their number is public)
    public_classes: bool

    @property
    def budget(self) -> PreprocessingBudget:
        return self.histogram.budget

    @property
    def rows(self) -> float:
        return max(float(sum(self.histogram.counts)) + self.planted, 1.0)

    @property
    def tensors(self) -> tuple[torch.Tensor, ...]:
        return torch.from_numpy(self.images), torch.from_numpy(self.labels)

    @property
    def classes(self) -> list[str]:
        return self.histogram.classes


def private_label_histogram(
    data: ImageSet, dp: DPConfig, *, public_classes: bool, rng: np.random.Generator
) -> LabelHistogram:
    """One Gaussian histogram of the labels (each image counts once: sensitivity 1)."""
    budget = plan_label_histogram(dp, public_classes=public_classes)
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


def prepare_images(
    data: ImageSet,
    spec: TrainSpec,
    *,
    public_classes: bool,
    plant: ImagePlanter | None = None,
) -> PreparedImages:
    """The DP label histogram, and the images of the classes it kept.

    ``plant`` (an audit's canaries) sees only the kept classes, the shape and the DP
    row count, after the histogram was released from the real images alone; what it
    returns is trained on beside them.
    """
    if len(data) < MIN_IMAGES:
        raise TrainingError(f"{len(data)} images; {spec.generator} needs at least {MIN_IMAGES}")
    histogram = private_label_histogram(
        data, spec.dp, public_classes=public_classes, rng=secret_numpy_rng()
    )
    kept = [data.classes.index(c) for c in histogram.classes]
    remap = np.full(len(data.classes), -1, dtype=np.int64)
    remap[kept] = np.arange(len(kept))
    labels = remap[data.labels]
    images, labels = data.images[labels >= 0], labels[labels >= 0]
    planted = 0
    if plant is not None:
        dp_rows = float(sum(histogram.counts))
        extra, extra_labels = plant(histogram.classes, data.shape, dp_rows)
        images = np.concatenate([images, extra])
        labels = np.concatenate([labels, extra_labels.astype(labels.dtype)])
        planted = len(extra)
    return PreparedImages(histogram, images, labels, data.shape, planted, public_classes)


def build_image_generator(
    artifact: Any, prepared: PreparedImages, net: torch.nn.Module, run: RunFacts,
    record: dict[str, Any], *, public_metadata: list[str],
) -> Any:  # fmt: skip
    """The trained generator over the kept classes, in their DP mix, with its accounting."""
    public_classes = prepared.public_classes
    public = [*public_metadata, *(["classes"] if public_classes else [])]
    private = ["class frequencies", *([] if public_classes else ["classes"])]
    height, width, channels = prepared.shape
    privacy_report, summary = account(
        run, prepared.budget, columns=height * width * channels, public_metadata=public,
        private_metadata=private,
    )  # fmt: skip
    counts = prepared.histogram.counts
    total = sum(counts)
    return artifact(
        net=net, classes=prepared.classes, class_weights=[c / total for c in counts],
        privacy=privacy_report, summary=summary, training=record,
    )  # fmt: skip

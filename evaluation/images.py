"""Evaluation of synthetic labeled images: utility, a Frechet distance, memorization, gates.

- Utility: TSTR accuracy (a small CNN trained on synthetic images, tested on the real
  holdout) beside TRTR (the same CNN trained on the real training images).
- Fidelity: the Frechet distance between synthetic and holdout images in the feature
  space of the TRTR classifier, beside the same distance between train and holdout
  (what two real samples score). See ``image_classifier`` for why not Inception.
- Memorization: the table metrics on flattened pixels in [0, 1] (exact copies, DCR,
  DCR share with its permutation test, NNDR, distance MIA), and the closest
  synthetic-train pairs, which only the owner's report shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import linalg

from evaluation.audit import AuditResult
from evaluation.errors import MetricError
from evaluation.gates import Gate, release_gates
from evaluation.image_classifier import fit_classifier
from evaluation.memorization import Memorization, distance_memorization
from evaluation.spec import Thresholds

__all__ = [
    "ImageEvaluation",
    "LabeledImages",
    "evaluate_images",
    "frechet_distance",
    "image_report_data",
]

MAX_IMAGES = 10_000
CLOSEST_PAIRS = 16


@dataclass(frozen=True)
class LabeledImages:
    """uint8 (N, H, W, C) images and their class names."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise MetricError(f"images must be uint8 N x H x W x C, got {self.images.shape}")
        if len(self.labels) != len(self.images):
            raise MetricError(f"{len(self.images)} images but {len(self.labels)} labels")


@dataclass(frozen=True)
class ImageEvaluation:
    tstr_accuracy: float
    trtr_accuracy: float
    frechet_synthetic: float  # synthetic vs holdout, classifier features
    frechet_real: float  # train vs holdout: the floor two real samples reach
    memorization: Memorization
    closest_pairs: list[tuple[int, int, float]]  # (synthetic, train, distance), nearest first
    gates: list[Gate]
    sizes: dict[str, int] = field(default_factory=dict)
    audit: AuditResult | None = None

    @property
    def tstr_ratio(self) -> float:
        return self.tstr_accuracy / self.trtr_accuracy if self.trtr_accuracy else 0.0

    @property
    def passed(self) -> bool:
        return all(g.status != "fail" for g in self.gates)

    def as_dict(self) -> dict[str, Any]:
        m = self.memorization
        return {
            "kind": "images",
            "utility": {
                "tstr_accuracy": self.tstr_accuracy,
                "trtr_accuracy": self.trtr_accuracy,
                "tstr_ratio": self.tstr_ratio,
            },
            "fidelity": {
                "frechet_synthetic": self.frechet_synthetic,
                "frechet_real": self.frechet_real,
                "feature_space": "CNN classifier trained on the real training images",
            },
            "memorization": {
                "exact_copy_rate": m.exact_copy_rate,
                "holdout_copy_rate": m.holdout_copy_rate,
                "dcr_share": m.dcr_share,
                "dcr_share_p_value": m.dcr_share_p_value,
                "dcr_synthetic": m.quantiles(m.dcr_synthetic),
                "dcr_holdout": m.quantiles(m.dcr_holdout),
                "mia_auc": m.mia_auc,
                "mia_auc_ci": list(m.mia_auc_ci),
            },
            "gates": [g.as_dict() for g in self.gates],
            "passed": self.passed,
            "audit": self.audit.as_dict() if self.audit else None,
            "sizes": self.sizes,
        }


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between feature clouds."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    # a ridge of 1e-6: ReLU features have dead units, whose covariance is singular
    ridge = np.eye(a.shape[1]) * 1e-6
    cov_a, cov_b = np.cov(a, rowvar=False) + ridge, np.cov(b, rowvar=False) + ridge
    root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    root = np.real(root)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def _copy_rate(images: np.ndarray, train_keys: set[bytes]) -> float:
    return float(np.mean([im.tobytes() in train_keys for im in images]))


def _subsample(data: LabeledImages, n: int, rng: np.random.Generator) -> LabeledImages:
    if len(data.images) <= n:
        return data
    keep = np.sort(rng.choice(len(data.images), n, replace=False))
    return LabeledImages(data.images[keep], data.labels[keep])


def _flat(d: LabeledImages) -> np.ndarray:
    return d.images.reshape(len(d.images), -1).astype(np.float32) / 255.0


def _memorization(
    train: LabeledImages, holdout: LabeledImages, synthetic: LabeledImages, rng: Any
) -> Any:
    keys = {im.tobytes() for im in train.images}
    return distance_memorization(
        _flat(train), _flat(holdout), _flat(synthetic),
        copy_rate=_copy_rate(synthetic.images, keys), holdout_rate=_copy_rate(holdout.images, keys),
        counts=(len(synthetic.images), len(holdout.images)), rng=rng,
    )  # fmt: skip


def evaluate_images(
    train: LabeledImages,
    holdout: LabeledImages,
    synthetic: LabeledImages,
    classes: list[str],
    *,
    thresholds: Thresholds | None = None,
    audit: AuditResult | None = None,
    claimed_epsilon: float | None = None,
    classifier_epochs: int = 15,
    seed: int = 0,
    on_step: Callable[[str], None] | None = None,
) -> ImageEvaluation:
    """Every image metric and the release gates; at most ``MAX_IMAGES`` of each set.
    ``on_step`` hears each step as it starts (utility, fidelity, memorization)."""
    step = on_step or (lambda _: None)
    shapes = {d.images.shape[1:] for d in (train, holdout, synthetic)}
    if len(shapes) != 1:
        raise MetricError(f"train, holdout and synthetic images differ in shape: {shapes}")
    rng = np.random.default_rng(seed)
    train, holdout, synthetic = (
        _subsample(d, MAX_IMAGES, rng) for d in (train, holdout, synthetic)
    )
    step("utility")
    real = fit_classifier(train.images, train.labels, classes, epochs=classifier_epochs, seed=seed)
    on_synthetic = fit_classifier(
        synthetic.images, synthetic.labels, classes, epochs=classifier_epochs, seed=seed
    )
    step("fidelity")
    sets = {"train": train, "holdout": holdout, "synthetic": synthetic}
    features = {name: real.features(d.images) for name, d in sets.items()}

    step("memorization")
    memo = _memorization(train, holdout, synthetic, rng)
    return ImageEvaluation(
        tstr_accuracy=on_synthetic.accuracy(holdout.images, holdout.labels),
        trtr_accuracy=real.accuracy(holdout.images, holdout.labels),
        frechet_synthetic=frechet_distance(features["synthetic"], features["holdout"]),
        frechet_real=frechet_distance(features["train"], features["holdout"]),
        memorization=memo,
        closest_pairs=_closest_pairs(_flat(synthetic), _flat(train)),
        gates=release_gates(
            memorization=memo,
            quality=None,
            audit=audit,
            claimed_epsilon=claimed_epsilon,
            thresholds=thresholds or Thresholds(),
        ),
        sizes={
            "train": len(train.images),
            "holdout": len(holdout.images),
            "synthetic": len(synthetic.images),
        },
        audit=audit,
    )


def _closest_pairs(synthetic: np.ndarray, train: np.ndarray) -> list[tuple[int, int, float]]:
    """The synthetic images nearest to some training image, with that image."""
    from sklearn.neighbors import NearestNeighbors

    search = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(train)
    distance, index = search.kneighbors(synthetic)
    order = np.argsort(distance[:, 0])[:CLOSEST_PAIRS]
    return [(int(i), int(index[i, 0]), float(distance[i, 0])) for i in order]


def _png_uri(picture: np.ndarray, scale: int) -> str:
    """A uint8 (H, W, C) picture, enlarged ``scale`` times (nearest), as a data URI."""
    import base64
    import io

    from PIL import Image

    big = picture.repeat(scale, 0).repeat(scale, 1)
    image = Image.fromarray(big[..., 0] if big.shape[-1] == 1 else big)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _tile(images: list[np.ndarray], columns: int) -> np.ndarray:
    height, width, channels = images[0].shape
    rows = max(1, -(-len(images) // columns))
    out = np.full((rows * (height + 1) + 1, columns * (width + 1) + 1, channels), 255, np.uint8)
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        out[1 + r * (height + 1) : 1 + r * (height + 1) + height,
            1 + c * (width + 1) : 1 + c * (width + 1) + width] = image  # fmt: skip
    return out


def image_report_data(
    result: ImageEvaluation,
    *,
    train: LabeledImages,
    synthetic: LabeledImages,
    classes: list[str],
    privacy: dict[str, Any] | None,
    show_real_images: bool = True,
) -> dict[str, Any]:
    """The owner's report document: metrics, gates, a sample grid per class and the
    closest synthetic-train pairs.

    Those pairs show real training images: a disclosure outside epsilon, for owners and
    auditors only (reports never reach consumers). ``show_real_images=False`` leaves
    the images out and keeps only their distances.
    """
    import datetime

    scale = max(1, 96 // synthetic.images.shape[1])
    per_class = [
        [im for im, label in zip(synthetic.images, synthetic.labels, strict=True)
         if label == c][:10]
        for c in classes
    ]  # fmt: skip
    rows = [
        row + [np.full_like(synthetic.images[0], 255)] * (10 - len(row)) for row in per_class if row
    ]
    pairs = [
        im for s, t, _ in result.closest_pairs for im in (synthetic.images[s], train.images[t])
    ] if show_real_images else []  # fmt: skip
    return {
        "schema_version": "1.0",
        "kind": "images",
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "privacy": privacy,
        "claimed_epsilon": (privacy or {}).get("epsilon") if (privacy or {}).get("dp") else None,
        **result.as_dict(),
        "classes": classes,
        "figures": {
            "samples": _png_uri(_tile([im for row in rows for im in row], 10), scale),
            "closest_pairs": _png_uri(_tile(pairs, 8), scale) if pairs else None,
        },
        "closest_pairs": [
            {"synthetic": s, "train": t, "distance": d} for s, t, d in result.closest_pairs
        ],
        "real_images_shown": show_real_images,
    }

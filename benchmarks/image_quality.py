"""DP image generation: image-ar and image-gan at several epsilons on real images.

``--dataset digits``: scikit-learn's 1,797 real 8x8 digits, 1,400 to train on, 397 held
out. ``--dataset fashion-mnist``: Zalando's 70,000 real 28x28 clothing images from
Debian's ``dataset-fashion-mnist`` (``make bench-setup`` installs it), the 60,000
training images to train on and 2,000 of the 10,000 test images held out. For each
generator and epsilon, fit it (DP-SGD, defaults), draw 2,000 images in the DP class mix, and
evaluate: TSTR vs TRTR accuracy (small CNN), the Frechet distance in that CNN's feature
space (synthetic vs holdout, beside train vs holdout), the DCR share.

    python benchmarks/image_quality.py [--dataset digits|fashion-mnist] [--epsilons 10 1]
        [--samples 2000] [--generators image-ar image-gan] [--epochs N] [--batch-size B]

Target (issue 5): TSTR at least 0.80 of TRTR at epsilon 10, trained on CPU in 10 min.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

import training
from evaluation.images import LabeledImages, evaluate_images
from training.images import ImageSet, load_idx


def digits() -> tuple[ImageSet, ImageSet]:
    d = load_digits()
    images = np.rint(d.images * 255 / 16).astype(np.uint8)[..., None]
    order = np.random.default_rng(0).permutation(len(images))
    classes = [str(i) for i in range(10)]
    part = [order[:1400], order[1400:]]
    return tuple(ImageSet(images[p], d.target[p].astype(np.int64), classes) for p in part)  # type: ignore[return-value]


FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                   "sneaker", "bag", "ankle boot"]  # fmt: skip


def fashion_mnist(held_out: int = 2000) -> tuple[ImageSet, ImageSet]:
    """The 60,000 training images, and the first ``held_out`` test images."""
    if not FASHION.exists():
        raise SystemExit(f"{FASHION} missing: apt-get install dataset-fashion-mnist")
    train, test = (
        load_idx(FASHION / f"{prefix}-images-idx3-ubyte.gz",
                 FASHION / f"{prefix}-labels-idx1-ubyte.gz", FASHION_CLASSES)
        for prefix in ("train", "t10k")
    )  # fmt: skip
    return train, ImageSet(test.images[:held_out], test.labels[:held_out], FASHION_CLASSES)


def labeled(data: ImageSet) -> LabeledImages:
    return LabeledImages(data.images, np.asarray(data.classes, dtype=object)[data.labels])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epsilons", type=float, nargs="+", default=[10.0, 1.0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generators", nargs="+", default=["image-ar", "image-gan"])
    parser.add_argument("--dataset", choices=["digits", "fashion-mnist"], default="digits")
    parser.add_argument("--epochs", type=int, default=None, help="default: the generator's")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the generator's")
    args = parser.parse_args()
    train, held = digits() if args.dataset == "digits" else fashion_mnist()
    print(f"{args.dataset}: {len(train):,} training images {train.images.shape[1:]}, "
          f"{len(held):,} held out\n")  # fmt: skip
    print("| generator | epsilon | fit s | sample s | TSTR | TRTR | TSTR/TRTR | Frechet syn "
          "| Frechet real | DCR share |\n|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    for generator, eps in [(g, e) for g in args.generators for e in args.epsilons]:
        spec = training.TrainSpec(
            generator=generator, dp=training.DPConfig(epsilon=eps), seed=args.seed,
            epochs=args.epochs, batch_size=args.batch_size,
        )  # fmt: skip
        started = time.perf_counter()
        model = training.fit(train, spec)
        fit_s = time.perf_counter() - started
        started = time.perf_counter()
        synthetic = model.sample(args.samples, seed=args.seed)
        sample_s = time.perf_counter() - started
        result = evaluate_images(labeled(train), labeled(held), labeled(synthetic), train.classes)
        print(
            f"| {generator} | {model.privacy.epsilon:.2f} | {fit_s:.0f} | {sample_s:.0f} "
            f"| {result.tstr_accuracy:.3f} | {result.trtr_accuracy:.3f} | {result.tstr_ratio:.2f} "
            f"| {result.frechet_synthetic:.2f} | {result.frechet_real:.2f} "
            f"| {result.memorization.dcr_share:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

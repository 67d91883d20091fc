"""A small CNN: the downstream model of image TSTR/TRTR, and the feature space of the
Frechet distance.

No pretrained network can be downloaded at run time, so the features come from this
classifier trained on the real training images: a "Frechet classifier distance", not
the Inception-based FID of the literature, and not comparable with published FIDs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ImageClassifier", "fit_classifier"]

FEATURES = 128


class _Net(nn.Module):
    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.hidden = nn.Linear(64 * 16, FEATURES)
        self.head = nn.Linear(FEATURES, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        if min(x.shape[-2:]) >= 8:
            x = F.max_pool2d(x, 2)
        return F.relu(self.hidden(self.pool(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


@dataclass
class ImageClassifier:
    net: _Net
    classes: list[str]

    @torch.no_grad()
    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class names, one per image."""
        self.net.eval()
        logits = torch.cat([self.net(_tensor(images[i : i + 1024]))
                            for i in range(0, len(images), 1024)])  # fmt: skip
        return np.asarray(self.classes, dtype=object)[logits.argmax(1).numpy()]

    @torch.no_grad()
    def features(self, images: np.ndarray) -> np.ndarray:
        self.net.eval()
        return torch.cat([self.net.features(_tensor(images[i : i + 1024]))
                          for i in range(0, len(images), 1024)]).numpy()  # fmt: skip

    def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
        return float((self.predict(images) == np.asarray(labels, dtype=object)).mean())


def fit_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    *,
    epochs: int = 15,
    seed: int = 0,
) -> ImageClassifier:
    """Train on uint8 (N, H, W, C) images with class-name ``labels`` (Adam, batch 128)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = _Net(images.shape[-1], len(classes))
    index = {c: i for i, c in enumerate(classes)}
    x = _tensor(images)
    y = torch.tensor([index[str(label)] for label in labels], dtype=torch.long)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 128):
            batch = order[start : start + 128]
            optimizer.zero_grad()
            F.cross_entropy(net(x[batch]), y[batch]).backward()
            optimizer.step()
    return ImageClassifier(net, list(classes))

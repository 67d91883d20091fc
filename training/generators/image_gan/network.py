"""The networks of image-gan: a DCGAN-style class-conditional generator and critic.

GroupNorm instead of BatchNorm: BatchNorm mixes the rows of a batch, so one image's
gradient would depend on the others and per-sample clipping would bound nothing
(Opacus refuses it). The class enters the generator as a one-hot beside the noise and
the discriminator as constant label planes beside the pixels. Any size up to 64x64:
the generator upsamples twice from a quarter of the size and crops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["DCGANConfig", "ImageDiscriminator", "ImageGeneratorNet"]


@dataclass
class DCGANConfig:
    height: int
    width: int
    channels: int
    classes: int
    noise_dim: int = 64
    hidden: int = 32

    @property
    def base(self) -> tuple[int, int]:
        return math.ceil(self.height / 4), math.ceil(self.width / 4)


def _groups(channels: int) -> int:
    return min(8, channels)


class ImageGeneratorNet(nn.Module):
    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        self.config = config
        h, (bh, bw) = config.hidden, config.base
        self.project = nn.Linear(config.noise_dim + config.classes, 2 * h * bh * bw)
        self.body = nn.Sequential(
            nn.GroupNorm(_groups(2 * h), 2 * h),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * h, h, 4, stride=2, padding=1),
            nn.GroupNorm(_groups(h), h),
            nn.ReLU(),
            nn.ConvTranspose2d(h, config.channels, 4, stride=2, padding=1),
        )

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1], (B, C, H, W)."""
        cfg, (bh, bw) = self.config, self.config.base
        hot = F.one_hot(labels, cfg.classes).float()
        x = self.project(torch.cat([noise, hot], dim=1)).view(-1, 2 * cfg.hidden, bh, bw)
        return torch.sigmoid(self.body(x))[:, :, : cfg.height, : cfg.width]


class ImageDiscriminator(nn.Module):
    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden
        self.body = nn.Sequential(
            nn.Conv2d(config.channels + config.classes, h, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(h, 2 * h, 4, stride=2, padding=1),
            nn.GroupNorm(_groups(2 * h), 2 * h),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        bh, bw = config.base
        self.head = nn.Linear(2 * h * bh * bw, 1)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """A realness logit per image: (B, C, H, W) in [0, 1], (B,) -> (B,)"""
        cfg = self.config
        planes = F.one_hot(labels, cfg.classes).float()[:, :, None, None]
        planes = planes.expand(-1, -1, cfg.height, cfg.width)
        return self.head(self.body(torch.cat([images * 2 - 1, planes], dim=1))).squeeze(1)

"""A class-conditional PixelCNN over quantized pixel intensities, in raster-scan order.

Causality comes from shifted convolutions (PixelCNN++, Salimans et al. 2017) rather than
masked kernels: a vertical stack sees only the rows above a pixel, a horizontal stack
also the pixels to its left in its row. Each is an ordinary ``nn.Conv2d`` behind
asymmetric zero padding, so Opacus computes exact per-sample gradients for every layer
(a masked kernel would clip and noise the gradients of weights that are always zero).

Channels of one pixel (RGB) are predicted independently given every earlier pixel: a
simplification that keeps sampling at one network pass per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "PixelCNN",
    "PixelCNNConfig",
    "generate_images",
    "image_log_likelihood",
    "per_image_loss",
    "receptive_rows",
]


@dataclass
class PixelCNNConfig:
    height: int = 8
    width: int = 8
    channels: int = 1
    levels: int = 16  # intensity levels per channel (public quantization)
    classes: int = 10
    hidden: int = 32
    layers: int = 4


def _down_shift(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x[:, :, :-1, :], (0, 0, 1, 0))


def _right_shift(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x[:, :, :, :-1], (1, 0, 0, 0))


class DownConv(nn.Module):
    """Output (i, j) sees rows i-kh+1..i, columns j-(kw-1)/2..j+(kw-1)/2."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int]) -> None:
        super().__init__()
        kh, kw = kernel
        self.pad = ((kw - 1) // 2, (kw - 1) // 2, kh - 1, 0)
        self.conv = nn.Conv2d(c_in, c_out, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad))


class DownRightConv(nn.Module):
    """Output (i, j) sees rows i-kh+1..i, columns j-kw+1..j."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int]) -> None:
        super().__init__()
        kh, kw = kernel
        self.pad = (kw - 1, 0, kh - 1, 0)
        self.conv = nn.Conv2d(c_in, c_out, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad))


class GatedLayer(nn.Module):
    """One residual step of both stacks; the class enters as a per-channel bias."""

    def __init__(self, hidden: int, classes: int) -> None:
        super().__init__()
        self.vertical = DownConv(hidden, hidden, (2, 3))
        self.horizontal = DownRightConv(hidden, hidden, (2, 2))
        self.link = nn.Conv2d(hidden, hidden, 1)
        self.cond_v = nn.Embedding(classes, hidden)
        self.cond_h = nn.Embedding(classes, hidden)

    def forward(
        self, u: torch.Tensor, ul: torch.Tensor, label: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        bias_v = self.cond_v(label)[:, :, None, None]
        bias_h = self.cond_h(label)[:, :, None, None]
        u = u + F.elu(self.vertical(F.elu(u)) + bias_v)
        ul = ul + F.elu(self.horizontal(F.elu(ul)) + self.link(F.elu(u)) + bias_h)
        return u, ul


class PixelCNN(nn.Module):
    """logits (N, C, levels, H, W) of each pixel given the earlier ones and the class."""

    def __init__(self, config: PixelCNNConfig) -> None:
        super().__init__()
        self.config = config
        c, h = config.channels, config.hidden
        self.first_v = DownConv(c, h, (2, 3))
        self.first_h_above = DownConv(c, h, (1, 3))
        self.first_h_left = DownRightConv(c, h, (2, 1))
        self.blocks = nn.ModuleList(GatedLayer(h, config.classes) for _ in range(config.layers))
        self.out = nn.Conv2d(h, c * config.levels, 1)

    def forward(self, levels: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """``levels``: (N, C, H, W) integer intensities in [0, levels); ``label``: (N,)."""
        return self.forward_scaled(levels.float() / (self.config.levels - 1) * 2 - 1, label)

    def forward_scaled(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """The same on intensities already scaled to [-1, 1] (differentiable in them)."""
        u = _down_shift(self.first_v(x))
        ul = _down_shift(self.first_h_above(x)) + _right_shift(self.first_h_left(x))
        for block in self.blocks:
            u, ul = block(u, ul, label)
        n, _, height, width = x.shape
        logits = self.out(F.elu(ul))
        return logits.view(n, self.config.channels, self.config.levels, height, width)


def per_image_loss(logits: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per pixel and channel, one value per image.  -> (N,)"""
    n, k = logits.shape[0], logits.shape[2]
    flat = logits.permute(0, 1, 3, 4, 2).reshape(-1, k)
    loss = F.cross_entropy(flat, levels.reshape(-1), reduction="none")
    return loss.view(n, -1).mean(1)


@torch.no_grad()
def image_log_likelihood(net: PixelCNN, levels: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Total log-probability of each image (nats).  -> (N,)"""
    logits = net(levels, label)
    per_pixel = per_image_loss(logits, levels)
    return -per_pixel * levels[0].numel()


def receptive_rows(config: PixelCNNConfig) -> int:
    """Rows a pixel's logits depend on, its own included: two from the first layer's
    shifted convolutions, one more per layer."""
    return config.layers + 3


@torch.no_grad()
def generate_images(
    net: PixelCNN, label: torch.Tensor, *, generator: torch.Generator
) -> torch.Tensor:
    """Draw images pixel by pixel in raster order, batched over images.  -> (N, C, H, W)

    Row i sees at most ``layers + 2`` rows above it, so each step runs the network on
    that band of rows, not the whole image: the cost per pixel stays constant as
    images grow taller (a test checks the band gives the full image's logits).
    """
    cfg = net.config
    n = label.shape[0]
    out = torch.zeros(n, cfg.channels, cfg.height, cfg.width, dtype=torch.long)
    reach = receptive_rows(cfg)
    for i in range(cfg.height):
        top = max(0, i - reach + 1)
        for j in range(cfg.width):
            band = out[:, :, top : i + 1, :]
            logits = net(band, label)[:, :, :, i - top, j]  # (N, C, levels)
            probs = torch.softmax(logits.float(), -1).reshape(-1, cfg.levels)
            draw = torch.multinomial(probs, 1, generator=generator).view(n, cfg.channels)
            out[:, :, i, j] = draw
    return out

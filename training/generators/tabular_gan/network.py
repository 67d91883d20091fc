"""The networks of tabular-gan: a conditional generator and a discriminator over tokens.

Rows are the encoder's tokens (one per column), seen by the discriminator as the
concatenation of their one-hot vectors. The generator emits one categorical
distribution per column and draws from it with the straight-through Gumbel-softmax:
exact one-hots forward (so the discriminator cannot tell fakes by their softness),
soft gradients backward. The generator's condition is a partial row (any subset of
columns fixed to a token, one-hot, with a mask), which is how ``where=`` works.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "Discriminator",
    "Generator",
    "TabularGANConfig",
    "condition_vector",
    "draw_tokens",
    "masked_logits",
    "one_hot_rows",
    "straight_through",
]


@dataclass
class TabularGANConfig:
    vocab_sizes: list[int]
    noise_dim: int = 64
    hidden_size: int = 256
    depth: int = 2
    discriminator_size: int = 256
    discriminator_depth: int = 2

    @property
    def width(self) -> int:
        return sum(self.vocab_sizes)


def one_hot_rows(tokens: torch.Tensor, vocab_sizes: list[int]) -> torch.Tensor:
    """(B, C) tokens -> (B, sum V) concatenated one-hots."""
    return torch.cat([F.one_hot(tokens[:, j], v).float() for j, v in enumerate(vocab_sizes)], dim=1)


def condition_vector(
    tokens: torch.Tensor, fixed: torch.Tensor, vocab_sizes: list[int]
) -> torch.Tensor:
    """The generator's condition: one-hots of the fixed columns, and the mask.

    (B, C) tokens, (B, C) bool -> (B, sum V + C)
    """
    hot = one_hot_rows(tokens, vocab_sizes)
    widths = torch.tensor(vocab_sizes, device=tokens.device)
    keep = fixed.float().repeat_interleave(widths, dim=1)
    return torch.cat([hot * keep, fixed.float()], dim=1)


class Generator(nn.Module):
    def __init__(self, config: TabularGANConfig) -> None:
        super().__init__()
        self.config = config
        width = config.width + len(config.vocab_sizes)
        layers: list[nn.Module] = []
        size = config.noise_dim + width
        for _ in range(config.depth):
            layers += [nn.Linear(size, config.hidden_size), nn.LayerNorm(config.hidden_size)]
            layers.append(nn.LeakyReLU(0.2))
            size = config.hidden_size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(size, config.width)

    def forward(self, noise: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Logits of every column, concatenated.  (B, sum V)"""
        return self.head(self.body(torch.cat([noise, condition], dim=1)))


class Discriminator(nn.Module):
    """Plain Linear layers and LeakyReLU: what Opacus' ghost clipping supports."""

    def __init__(self, config: TabularGANConfig) -> None:
        super().__init__()
        size = config.discriminator_size
        layers: list[nn.Module] = [nn.Linear(config.width, size), nn.LeakyReLU(0.2)]
        for _ in range(config.discriminator_depth - 1):
            layers += [nn.Linear(size, size), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers, nn.Linear(size, 1))

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.net(rows).squeeze(1)


def masked_logits(
    logits: torch.Tensor, vocab_sizes: list[int], banned: list[list[int]]
) -> list[torch.Tensor]:
    """Per-column logits with the tokens a column never emits (``other``) at -inf."""
    parts = list(torch.split(logits, vocab_sizes, dim=1))
    for j, tokens in enumerate(banned):
        if tokens:
            parts[j] = parts[j].index_fill(1, torch.tensor(tokens, device=logits.device), -1e9)
    return parts


def straight_through(
    logits: torch.Tensor, vocab_sizes: list[int], banned: list[list[int]], tau: float = 0.5
) -> torch.Tensor:
    """Exact one-hot rows forward, Gumbel-softmax gradients backward.  (B, sum V)"""
    return torch.cat(
        [
            F.gumbel_softmax(p, tau=tau, hard=True)
            for p in masked_logits(logits, vocab_sizes, banned)
        ],
        dim=1,
    )


def draw_tokens(
    logits: torch.Tensor,
    vocab_sizes: list[int],
    banned: list[list[int]],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One token per column, drawn from the generator's softmax.  (B, C)"""
    columns = []
    for part in masked_logits(logits, vocab_sizes, banned):
        probs = torch.softmax(part.float(), dim=1)
        columns.append(torch.multinomial(probs, 1, generator=generator).squeeze(1))
    return torch.stack(columns, dim=1)

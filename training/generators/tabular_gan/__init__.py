"""tabular-gan: the trained conditional GAN table generator (sample, save, load).

Fitting lives in ``recipe`` (Lightning and Opacus); sampling needs only the
generator network. ``where=`` goes in as the generator's condition, and the fixed
columns' tokens are then set exactly.
"""

from __future__ import annotations

from typing import Any

import torch

from training.calibration import Tilt
from training.generators.table_generator import TableGenerator
from training.generators.tabular_gan.network import (
    Generator,
    TabularGANConfig,
    condition_vector,
    draw_tokens,
)

__all__ = ["ARTIFACT", "NAME", "TabularGANGenerator"]

NAME = "tabular-gan"


class TabularGANGenerator(TableGenerator):
    """A trained tabular-gan model: sample rows, save, load."""

    name = NAME
    net: Generator

    @torch.no_grad()
    def draw(
        self,
        size: int,
        fixed: dict[int, int],
        generator: torch.Generator,
        tilt: Tilt | None = None,  # never given: a GAN's calibration resamples
    ) -> torch.Tensor:
        config, columns = self.net.config, len(self.columns)
        base = torch.zeros(size, columns, dtype=torch.long)
        mask = torch.zeros(size, columns, dtype=torch.bool)
        for j, token in fixed.items():
            base[:, j], mask[:, j] = token, True
        condition = condition_vector(base, mask, config.vocab_sizes)
        noise = torch.randn(size, config.noise_dim, generator=generator)
        banned = [enc.never_sampled() for enc in self.encoder.columns]
        tokens = draw_tokens(self.net(noise, condition), config.vocab_sizes, banned, generator)
        for j, token in fixed.items():
            tokens[:, j] = token
        return tokens

    @classmethod
    def build_net(cls, model: dict[str, Any]) -> Generator:
        return Generator(TabularGANConfig(**model))


ARTIFACT = TabularGANGenerator

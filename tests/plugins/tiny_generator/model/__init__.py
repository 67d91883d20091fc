"""tiny-marginals' artifact: draws each column from its own learned distribution."""

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from training.generators.table_generator import TableGenerator

NAME = "tiny-marginals"


@dataclass
class TinyConfig:
    vocab_sizes: list[int]


class TinyNet(nn.Module):
    """Logits of every column's tokens from a constant input (a Linear layer, which
    Opacus clips per sample)."""

    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.config = config
        self.logits = nn.Linear(1, sum(config.vocab_sizes))

    def forward(self, rows: int) -> torch.Tensor:
        return self.logits(torch.ones(rows, 1, device=self.logits.weight.device))


class TinyGenerator(TableGenerator):
    name = NAME
    net: TinyNet

    @torch.no_grad()
    def draw(self, size: int, fixed: dict[int, int], generator: torch.Generator) -> torch.Tensor:
        parts = torch.split(self.net(size), self.net.config.vocab_sizes, dim=1)
        banned = [enc.never_sampled() for enc in self.encoder.columns]
        tokens = []
        for logits, ban in zip(parts, banned, strict=True):
            logits = logits.clone()
            logits[:, ban] = float("-inf")
            tokens.append(torch.multinomial(logits.softmax(1), 1, generator=generator)[:, 0])
        drawn = torch.stack(tokens, 1)
        for j, token in fixed.items():
            drawn[:, j] = token
        return drawn

    def model_config(self) -> dict[str, Any]:
        return asdict(self.net.config)

    @classmethod
    def build_net(cls, model: dict[str, Any]) -> TinyNet:
        return TinyNet(TinyConfig(**model))


ARTIFACT = TinyGenerator

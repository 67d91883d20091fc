"""Lightning module for any-order autoregressive training of the tabular-ar network.

This module only samples which columns to hide and computes the per-row loss; the
step (plain or DP-SGD) is ``PerRowLossModule``'s.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from training.pipeline.per_row_module import (
    Backward,
    EmptyBackward,
    PerRowLossModule,
    mean_backward,
)

__all__ = ["AnyOrderModule", "hidden_columns", "per_row_loss"]


def hidden_columns(
    n_rows: int, n_columns: int, generator: torch.Generator, *, in_order: float = 0.5
) -> torch.Tensor:
    """Columns to predict per row.  (B, C)

    A share ``in_order`` of rows hides a suffix of the canonical column order (the
    order sampling uses); the others hide a uniform random subset (any-order training,
    which is what lets ``where=`` fix any columns). The size is uniform in 1..C.
    """
    size = torch.randint(1, n_columns + 1, (n_rows, 1), generator=generator)
    ranks = torch.rand(n_rows, n_columns, generator=generator).argsort(1).argsort(1)
    suffix = (n_columns - 1 - torch.arange(n_columns)).expand(n_rows, n_columns)
    ordered = torch.rand(n_rows, 1, generator=generator) < in_order
    return torch.where(ordered, suffix, ranks) < size


def per_row_loss(
    logits: list[torch.Tensor], tokens: torch.Tensor, hidden: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy over each row's hidden columns.  -> (B,)"""
    losses = torch.stack(
        [F.cross_entropy(lg, tokens[:, j], reduction="none") for j, lg in enumerate(logits)], 1
    )  # (B, C)
    weights = hidden.float()
    return (losses * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class AnyOrderModule(PerRowLossModule):
    """Trains ``net`` with ``optimizer`` (a DPOptimizer under DP) and ``backward``."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        vocab_sizes: list[int],
        seed: int,
        backward: Backward = mean_backward,
        empty_backward: EmptyBackward | None = None,
        in_order: float = 0.5,
        total_steps: int = 1,
    ) -> None:
        super().__init__(
            net, optimizer, backward=backward, empty_backward=empty_backward,
            total_steps=total_steps,
        )  # fmt: skip
        self.vocab_sizes = vocab_sizes
        self.in_order = in_order
        self.mask_generator = torch.Generator().manual_seed(seed)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        tokens = batch[0]  # (B, C)
        n_rows, n_columns = tokens.shape
        optimizer = self.optimizers()
        assert not isinstance(optimizer, list)
        optimizer.zero_grad()
        if n_rows == 0:  # Poisson sampling at batch sizes >= 64: probability < e^-64
            self.step_empty(optimizer)
            return
        hidden = hidden_columns(n_rows, n_columns, self.mask_generator, in_order=self.in_order).to(
            tokens.device
        )
        mask_ids = torch.tensor(self.vocab_sizes, device=tokens.device)
        masked = torch.where(hidden, mask_ids.expand_as(tokens), tokens)
        logits = torch.split(self.net(masked), self.vocab_sizes, dim=1)
        self.step(optimizer, per_row_loss(list(logits), tokens, hidden))  # (B,)

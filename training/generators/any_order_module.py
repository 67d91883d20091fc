"""Lightning module for any-order autoregressive training of ``TabularAR``.

The network may be wrapped by Opacus; this module only samples which columns to hide
and computes the per-row loss. Manual optimization, because Opacus' ghost clipping
needs the per-row losses for its two backward passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytorch_lightning as pl
import torch
from pytorch_lightning.core.optimizer import LightningOptimizer
from torch import nn
from torch.nn import functional as F

__all__ = [
    "AnyOrderModule",
    "PerRowLossModule",
    "hidden_columns",
    "mean_backward",
    "per_row_loss",
]

Backward = Callable[[torch.Tensor], None]
EmptyBackward = Callable[[], None]


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


def mean_backward(loss_per_row: torch.Tensor) -> None:
    loss_per_row.mean().backward()


def warmup_cosine(total_steps: int, warmup: float = 0.1) -> Callable[[int], float]:
    """LR factor: linear warm-up, then cosine decay to zero.

    Decaying the rate matters: at a constant rate the last steps' jitter leaves the
    learned marginals several points of total variation away from the data's.
    """
    warm = max(int(total_steps * warmup), 1)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min((step - warm) / max(total_steps - warm, 1), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class PerRowLossModule(pl.LightningModule):
    """Manual optimization on per-row losses: ``backward`` (Opacus' under DP), a step,
    the warm-up cosine schedule, and the mean loss of each epoch. Subclasses compute
    the losses in ``training_step`` and hand them to ``step``, or call ``step_empty``
    when Poisson sampling drew no row (``empty_backward``: DP-SGD's step still runs,
    with noise only; see ``PrivateTraining.empty_backward``)."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        backward: Backward = mean_backward,
        empty_backward: EmptyBackward | None = None,
        total_steps: int = 1,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.net = net
        self._optimizer = optimizer
        self._backward = backward
        self._empty_backward = empty_backward
        self.after_step: Callable[[], None] | None = None  # DDP: training.distributed
        self.total_steps = total_steps
        self.epoch_losses: list[float] = []
        self._running: list[float] = []

    def step(self, optimizer: LightningOptimizer, loss_per_row: torch.Tensor) -> None:
        self._backward(loss_per_row)
        self._running.append(float(loss_per_row.detach().mean()))
        optimizer.step()
        self._finish_step()

    def _finish_step(self) -> None:
        if self.after_step is not None:
            self.after_step()
        self._scheduler.step()

    def step_empty(self, optimizer: LightningOptimizer) -> None:
        if self._empty_backward is None:  # plain training: no Poisson batches
            return
        self._empty_backward()
        optimizer.step()
        self._finish_step()

    def on_train_epoch_end(self) -> None:
        if self._running:
            self.epoch_losses.append(sum(self._running) / len(self._running))
        self._running = []

    def configure_optimizers(self) -> torch.optim.Optimizer:
        self._scheduler = torch.optim.lr_scheduler.LambdaLR(
            self._optimizer, warmup_cosine(self.total_steps)
        )
        return self._optimizer


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

"""The Lightning module of generators trained on per-row losses (the autoregressive ones).

The network may be wrapped by Opacus. Manual optimization, because Opacus' ghost
clipping needs the per-row losses for its two backward passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytorch_lightning as pl
import torch
from pytorch_lightning.core.optimizer import LightningOptimizer
from torch import nn

__all__ = ["PerRowLossModule", "mean_backward", "warmup_cosine"]

Backward = Callable[[torch.Tensor], None]
EmptyBackward = Callable[[], None]


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
        self.after_step: Callable[[], None] | None = None  # DDP: training.pipeline.distributed
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

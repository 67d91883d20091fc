"""tiny-marginals' fit recipe: sizes, the network, the per-row loss."""

import functools

import torch
from torch.nn import functional as F

from training.pipeline.per_row_module import PerRowLossModule
from training.pipeline.recipe import Networks, Recipe, Stepping
from training.pipeline.tables import PreparedTable
from training.spec import TrainSpec

from . import TinyConfig, TinyNet


class TinyModule(PerRowLossModule):
    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        tokens = batch[0]
        optimizer = self.optimizers()
        optimizer.zero_grad()
        if tokens.shape[0] == 0:
            self.step_empty(optimizer)
            return
        parts = torch.split(self.net(tokens.shape[0]), self.net_sizes, dim=1)
        losses = [F.cross_entropy(p, tokens[:, j], reduction="none") for j, p in enumerate(parts)]
        self.step(optimizer, torch.stack(losses, 1).sum(1))


def tiny_module(net, optimizer, stepping: Stepping, rank: int, *, sizes: list[int]) -> TinyModule:
    module = TinyModule(
        net, optimizer, backward=stepping.backward, empty_backward=stepping.empty_backward,
        total_steps=stepping.total_steps,
    )  # fmt: skip
    module.net_sizes = sizes
    return module


def build(table: PreparedTable, spec: TrainSpec, batch_size: int) -> Networks:
    sizes = table.fitted.encoder.vocab_sizes
    net = TinyNet(TinyConfig(vocab_sizes=sizes))
    return Networks(
        clipped=net, make_optimizer=functools.partial(torch.optim.Adam, lr=0.05),
        make_module=functools.partial(tiny_module, sizes=sizes), sampler=net,
    )  # fmt: skip


RECIPE = Recipe(
    batch_size=lambda rows, dp: int(min(max(rows / 5, 64), 1024)),
    epochs=lambda rows, dp: 10,
    build=build,
)

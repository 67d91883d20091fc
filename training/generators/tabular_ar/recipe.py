"""tabular-ar's fit recipe: sizes for a DP row count, the network and its module."""

from __future__ import annotations

import functools

import numpy as np
import torch

from training.generators.tabular_ar.module import AnyOrderModule
from training.generators.tabular_ar.network import TabularAR, TabularARConfig
from training.pipeline.recipe import Networks, Recipe, Stepping
from training.pipeline.tables import PreparedTable
from training.spec import TrainSpec

__all__ = ["RECIPE", "auto_batch_size", "auto_epochs", "auto_width"]


def auto_batch_size(rows: float, dp: bool) -> int:
    """About 1/5 of the rows per step under DP: large batches average out the noise.

    Capped at 1024 rows; ``rows`` is the DP row count, so the choice is post-processing.
    """
    if not dp:
        return 256
    return int(np.clip(round(rows / 5), 64, 1024))


def auto_learning_rate(*, dp: bool) -> float:
    return 1e-2 if dp else 3e-3


def auto_width(*, dp: bool) -> tuple[int, int]:
    """(hidden size, depth). Under DP the noise is added to every parameter, so a smaller
    network keeps more signal: 128 x 1 matched 256 x 2 at epsilon 1 on fair and CPS1988
    (sdmetrics overall within 0.01, two seeds each) and samples three times faster.
    """
    return (128, 1) if dp else (256, 2)


def auto_epochs(rows: float, dp: bool) -> int:
    return 30 if dp else int(np.clip(round(500_000 / max(rows, 1)), 20, 100))


def any_order_module(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    stepping: Stepping,
    rank: int,
    *,
    vocab_sizes: list[int],
    seed: int,
) -> AnyOrderModule:
    """The Lightning module of one process; each DDP rank hides its own columns."""
    return AnyOrderModule(
        net, optimizer, vocab_sizes=vocab_sizes, seed=seed + rank, backward=stepping.backward,
        empty_backward=stepping.empty_backward, total_steps=stepping.total_steps,
    )  # fmt: skip


def build(table: PreparedTable, spec: TrainSpec, batch_size: int) -> Networks:
    dp = spec.dp.enabled
    encoder = table.fitted.encoder
    hidden_size, depth = auto_width(dp=dp)
    config = TabularARConfig(
        vocab_sizes=encoder.vocab_sizes, embedding_dim=spec.embedding_dim,
        hidden_size=spec.hidden_size or hidden_size, depth=spec.depth or depth,
    )  # fmt: skip
    net = TabularAR(config)
    lr = spec.learning_rate or auto_learning_rate(dp=dp)
    return Networks(
        clipped=net, make_optimizer=functools.partial(torch.optim.Adam, lr=lr),
        make_module=functools.partial(
            any_order_module, vocab_sizes=config.vocab_sizes, seed=spec.seed
        ),
        sampler=net,
    )  # fmt: skip


RECIPE = Recipe(batch_size=auto_batch_size, epochs=auto_epochs, build=build)

"""What a generator brings to the fit pipeline: its defaults and its networks.

A recipe knows nothing of privacy. It says how large a batch and how many epochs suit
a (DP-counted) number of rows, and builds its networks from the prepared data: the
network DP-SGD clips (the whole model, or a GAN's discriminator), its optimizer, the
Lightning module that takes one step per batch, and the network the trained artifact
samples from. The loop (``training.pipeline.loop``) owns everything DP: planning,
``make_private``, one process or DDP, the accountant, what the artifact may record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import pytorch_lightning as pl
import torch
from torch import nn

from training.spec import TrainSpec

__all__ = ["Networks", "OptimizerFactory", "Prepared", "Recipe", "Stepping"]

Backward = Callable[[torch.Tensor], None]
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


@dataclass(frozen=True)
class Stepping:
    """How a module turns per-row losses into a step: plainly, or Opacus' DP-SGD.

    ``empty_backward``: the noise-only step of an empty Poisson batch (None in plain
    training, where no batch is empty). ``hooks``: switches the clipped network's
    per-sample hooks off while a GAN's generator steps on fakes alone (None where the
    network has none). ``total_steps``: the run's length, for a learning-rate schedule.
    """

    backward: Backward
    empty_backward: Callable[[], None] | None = None
    hooks: Callable[[bool], None] | None = None
    total_steps: int = 1


# (the clipped network as trained, its optimizer, stepping, DDP rank) -> the module.
# Under DDP the ranks are spawned, so it must pickle: a module-level function or a
# functools.partial of one.
ModuleFactory = Callable[[nn.Module, torch.optim.Optimizer, Stepping, int], pl.LightningModule]


@dataclass(frozen=True)
class Networks:
    """A generator's networks, as its recipe built them for one fit."""

    clipped: nn.Module  # what DP-SGD clips and noises: the only network real data reaches
    make_optimizer: OptimizerFactory  # its optimizer (each DDP rank builds its own)
    make_module: ModuleFactory
    sampler: nn.Module  # what the artifact samples from (the clipped one, or a generator)
    # rows in the clipped network's expected batch per sampled real row (a GAN's
    # discriminator sees as many fakes beside them: 2)
    batch_factor: int = 1
    # the rows the loop samples, where the recipe recodes the prepared tensors by a
    # fixed public map (a PixelCNN's intensity levels); None: the prepared ones
    tensors: tuple[torch.Tensor, ...] | None = None

    def rows_of(self, prepared: Prepared) -> tuple[torch.Tensor, ...]:
        return self.tensors if self.tensors is not None else prepared.tensors


class Prepared(Protocol):
    """A modality's data after its DP preprocessing (``tables``, ``images``)."""

    @property
    def tensors(self) -> tuple[torch.Tensor, ...]: ...  # what DP-SGD samples rows of

    @property
    def rows(self) -> float: ...  # the DP row count, at least 1

    @property
    def budget(self) -> Any: ...  # training.budget.PreprocessingBudget


@dataclass(frozen=True)
class Recipe:
    """A generator's defaults and network builder (``training.registry`` points here)."""

    batch_size: Callable[[float, bool], int]  # (DP rows, dp?) -> rows per step
    epochs: Callable[[float, bool], int]
    build: Callable[[Any, TrainSpec, int], Networks]  # (prepared, spec, batch size)
    # what the generator fixes without looking at data, shown on its privacy report
    # beside what the modality declares (image generators: their pixel grid)
    public_metadata: tuple[str, ...] = ()

"""DP-SGD over several processes: Lightning's DDP strategy, Opacus' distributed optimizer.

Why the accounting stays that of one process: every row lives in exactly one
process's shard and is drawn into a step with probability ``sample_rate`` there, so
the union of the processes' batches is one Poisson sample of the whole table at the
global rate; the clipped per-row gradients are summed across processes and only rank
0 adds noise (once, std noise_multiplier x clipping norm) before the average over the
global expected batch. One step of W processes is one step of the single-process
mechanism, so the plan (noise, rate, steps) made once in the parent is what every
rank's accountant records, and the parent checks that it did.

The parent does all data-dependent preprocessing (charged once) and spawns the
ranks itself, as torchrun would: each rank joins the process group, wraps the
network for DP-SGD, and runs a Lightning Trainer whose DDP strategy leaves the
gradient all-reduce to Opacus (torch's DistributedDataParallel would average the
unclipped gradients, which is not DP). Ranks hand their final weights back as
safetensors files; they must be identical, and the parent refuses a run where they
are not.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import queue
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning_fabric.plugins.environments import LightningEnvironment
from pytorch_lightning.strategies import DDPStrategy
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import TensorDataset

from training import privacy
from training.errors import TrainingError
from training.pipeline.per_row_module import PerRowLossModule

__all__ = ["DPSGDRun", "ModuleFactory", "OpacusDDPStrategy", "RankResult", "train_ddp"]

logger = logging.getLogger(__name__)
History = list[tuple[float, float, int]]
# (network as wrapped for DP-SGD, its DP optimizer, the wrapping, rank) -> the module
ModuleFactory = Callable[
    [nn.Module, torch.optim.Optimizer, privacy.PrivateTraining, int], PerRowLossModule
]
# (epoch, epochs, loss, epsilon spent so far): the fits' callback; the ranks' losses stay
# in the ranks, so the loss is NaN
Progress = Callable[[int, int, float, float | None], None]


@dataclass(frozen=True)
class DPSGDRun:
    """A DP-SGD run as planned in the parent: the same for every rank."""

    noise_multiplier: float
    sample_rate: float
    epochs: int
    batch_size: int  # the global expected batch
    max_grad_norm: float
    accountant: str
    prior: History  # what preprocessing released before training
    delta: float  # the accountant's delta, for progress reports
    # each rank's optimizer of the network's parameters (pickles: a functools.partial)
    make_optimizer: Callable[[Any], torch.optim.Optimizer]
    grad_sample_mode: str
    accelerator: str
    devices: int


@dataclass(frozen=True)
class RankResult:
    """One rank's end state: its weights and what its accountant recorded."""

    rank: int
    weights: dict[str, torch.Tensor]
    history: History


class OpacusDDPStrategy(DDPStrategy):
    """Lightning's DDP, without torch's DistributedDataParallel wrapper.

    DDP's own hooks all-reduce raw gradients during backward; under DP-SGD the sum
    across processes must come after per-row clipping, which Opacus' distributed
    optimizer does in its step. Here the model is only synchronized to rank 0's
    weights at the start.
    """

    def configure_ddp(self) -> None:
        assert self.model is not None
        with torch.no_grad():
            for tensor in [*self.model.parameters(), *self.model.buffers()]:
                dist.broadcast(tensor.data, src=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _RankProgress(pl.Callback):
    """Rank 0 tells the parent how far training got (the parent owns the callback)."""

    def __init__(self, sink: Any, epochs: int, spent: Callable[[], float]) -> None:
        self.sink, self.epochs, self.spent = sink, epochs, spent

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.sink.put((trainer.current_epoch + 1, self.epochs, float("nan"), self.spent()))


def _rank_main(
    rank: int,
    net: nn.Module,
    tensors: tuple[torch.Tensor, ...],
    run: DPSGDRun,
    factory: ModuleFactory,
    port: int,
    out_dir: str,
    progress: Any,
) -> None:
    """One process of the run (spawned: everything here arrives pickled)."""
    world = run.devices
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
        RANK=str(rank), LOCAL_RANK=str(rank), NODE_RANK="0",
    )  # fmt: skip
    cuda = privacy.uses_cuda(run.accelerator)
    if cuda:
        torch.cuda.set_device(rank)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        optimizer = run.make_optimizer(net.parameters())
        private = privacy.make_private(
            module=net, optimizer=optimizer, noise_multiplier=run.noise_multiplier,
            max_grad_norm=run.max_grad_norm, expected_batch_size=run.batch_size / world,  # type: ignore[arg-type]
            sample_rate=run.sample_rate, accountant=run.accountant, prior=run.prior,
            grad_sample_mode=run.grad_sample_mode, distributed=True,
            device=privacy.noise_device(run.accelerator, rank),
        )  # fmt: skip
        loader = privacy.distributed_poisson_loader(
            TensorDataset(*tensors), sample_rate=run.sample_rate, rank=rank, world=world
        )
        module = factory(private.module, private.optimizer, private, rank)
        module.after_step = functools.partial(_take_rank_zeros_weights, net)
        callbacks: list[pl.Callback] = []
        if rank == 0 and progress is not None:

            def spent() -> float:
                return privacy.accountant_epsilon(private.accountant, delta=run.delta)

            callbacks.append(_RankProgress(progress, run.epochs, spent))
        trainer = pl.Trainer(
            max_epochs=run.epochs, accelerator="gpu" if cuda else "cpu", devices=world,
            strategy=OpacusDDPStrategy(process_group_backend=backend),
            plugins=[LightningEnvironment()], logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False,
            use_distributed_sampler=False, callbacks=callbacks, num_sanity_val_steps=0,
        )  # fmt: skip
        trainer.fit(module, train_dataloaders=loader)
        weights = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        save_file(weights, str(Path(out_dir) / f"rank{rank}.safetensors"))
        history = [list(h) for h in private.accountant.history]
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(history))
    finally:
        dist.destroy_process_group()


def _take_rank_zeros_weights(net: nn.Module) -> None:
    """After every step each rank takes rank 0's parameters (one broadcast per tensor).

    The ranks apply the same all-reduced gradients, so this should change nothing; but
    under CPU load two gloo ranks were seen (2 runs in 6) to end about one final Adam
    step apart (1e-4, every tensor) with identical accounting, cause not found. With
    the broadcast the ranks cannot drift, and a rank that skipped a step would wait
    here rather than silently diverge.
    """
    with torch.no_grad():
        for tensor in net.parameters():
            dist.broadcast(tensor.data, src=0)


def train_ddp(
    net: nn.Module,
    tensors: tuple[torch.Tensor, ...],
    run: DPSGDRun,
    factory: ModuleFactory,
    *,
    progress: Progress | None = None,
) -> list[RankResult]:
    """Train ``net`` on ``tensors`` under DP-SGD in ``run.devices`` processes.

    ``net`` is updated in place with the trained weights. ``factory`` must be picklable
    (a module-level function, or a functools.partial of one): the ranks are spawned.
    Raises ``TrainingError`` if a rank fails, or if the ranks disagree on the weights
    or on the accounting.
    """
    if run.devices < 2:
        raise ValueError("train_ddp needs at least two processes")
    context = mp.get_context("spawn")
    sink = context.SimpleQueue() if progress is not None else None
    with tempfile.TemporaryDirectory(prefix="sanitas-ddp-") as out_dir:
        logger.info("DDP: %d processes (%s)", run.devices, run.accelerator)
        processes = mp.start_processes(
            _rank_main, args=(net, tensors, run, factory, _free_port(), out_dir, sink),
            nprocs=run.devices, join=False, start_method="spawn",
        )  # fmt: skip
        try:
            while not processes.join(timeout=0.5):
                _relay(sink, progress)
        except mp.ProcessRaisedException as e:
            raise TrainingError(f"a DDP training process failed: {e}") from e
        except mp.ProcessExitedException as e:
            raise TrainingError(f"a DDP training process died: {e}") from e
        _relay(sink, progress)
        results = [_collect(Path(out_dir), rank) for rank in range(run.devices)]
    _check_agreement(results)
    net.load_state_dict(results[0].weights)
    return results


def _relay(sink: Any, progress: Progress | None) -> None:
    if sink is None or progress is None:
        return
    try:
        while not sink.empty():
            progress(*sink.get())
    except (OSError, queue.Empty):  # a queue whose writer died: the join reports why
        return


def _collect(out_dir: Path, rank: int) -> RankResult:
    history = [
        (float(z), float(q), int(s))
        for z, q, s in json.loads((out_dir / f"rank{rank}.json").read_text())
    ]
    return RankResult(rank, load_file(str(out_dir / f"rank{rank}.safetensors")), history)


def _check_agreement(results: list[RankResult]) -> None:
    first = results[0]
    for other in results[1:]:
        if other.history != first.history:
            raise TrainingError(
                f"DDP ranks 0 and {other.rank} accounted different runs: "
                f"{first.history} vs {other.history}"
            )
        differing = {
            name: float((tensor - other.weights[name]).abs().max())
            for name, tensor in first.weights.items()
            if not torch.equal(tensor, other.weights[name])
        }
        if differing:
            raise TrainingError(
                f"DDP ranks 0 and {other.rank} ended with different weights (largest "
                f"absolute difference per tensor: {differing})"
            )

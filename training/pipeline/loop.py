"""The one training loop: DP-SGD (one process or DDP) or plain training, in Lightning.

Every generator trains here, so the privacy-critical steps are written once: the plan
(noise solved for the composed epsilon against the preprocessing and calibration
releases), ``make_private`` with the secret noise source, Poisson batches, the step
count the accountant recorded, and what a DP artifact may keep of the run (never the
training losses: averages over real rows that were never noised).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader, TensorDataset

from training import privacy
from training.pipeline.distributed import DPSGDRun, train_ddp
from training.pipeline.per_row_module import PerRowLossModule, mean_backward
from training.pipeline.recipe import Networks, Prepared, Stepping
from training.registry import entry
from training.spec import TrainSpec

__all__ = ["EpochProgress", "Trained", "train", "training_record"]

logger = logging.getLogger(__name__)
# (epoch, epochs, loss, epsilon spent so far)
EpochProgress = Callable[[int, int, float, float | None], None]


@dataclass(frozen=True)
class Trained:
    """What the run did: the steps the accountant counted and at which noise and rate."""

    steps: int
    losses: list[float]  # mean loss per epoch (the ranks' stay in the ranks under DDP)
    noise_multiplier: float | None
    sample_rate: float | None


class ProgressCallback(pl.Callback):
    def __init__(self, epochs: int, report_fn: EpochProgress, spent: Callable[[], float | None]):
        self.epochs, self.report_fn, self.spent = epochs, report_fn, spent

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        losses = getattr(module, "epoch_losses", [])
        self.report_fn(
            trainer.current_epoch + 1,
            self.epochs,
            losses[-1] if losses else float("nan"),
            self.spent(),
        )


def trainer(spec: TrainSpec, epochs: int, callbacks: list[pl.Callback]) -> pl.Trainer:
    """Lightning in one process; the batches are ours (Poisson, or a seeded shuffle)."""
    return pl.Trainer(
        max_epochs=epochs, accelerator=spec.accelerator, devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        use_distributed_sampler=False, callbacks=callbacks, num_sanity_val_steps=0,
    )  # fmt: skip


def training_record(spec: TrainSpec, trained: Trained) -> dict[str, Any]:
    """What the artifact keeps about the run: the spec, and the losses of a non-DP run.

    A DP run's losses are averages over real rows and were never noised: they would be
    data-dependent values outside the accounting, so they stay out of its artifact.
    """
    record: dict[str, Any] = {"spec": spec.model_dump(mode="json")}
    if not spec.dp.enabled:
        record["epoch_losses"] = trained.losses
    return record


def train(
    networks: Networks,
    data: Prepared,
    spec: TrainSpec,
    *,
    batch_size: int,
    epochs: int,
    progress: EpochProgress | None = None,
) -> Trained:
    """Train ``networks`` on the prepared tensors: DP-SGD when ``spec.dp`` is on."""
    if not spec.dp.enabled:
        return _train_plain(networks, data, spec, batch_size, epochs, progress)
    dp, budget = spec.dp, data.budget
    assert dp.epsilon is not None
    plan = privacy.plan_dp_sgd(
        TensorDataset(*networks.rows_of(data)), batch_size=batch_size, rows=data.rows,
        epochs=epochs, target_epsilon=dp.epsilon, delta=budget.delta_accountant,
        prior=budget.releases, accountant=dp.accountant,
    )  # fmt: skip
    logger.info(
        "DP-SGD: noise_multiplier=%.3f sample_rate=%.4f steps=%d",
        plan.noise_multiplier, plan.sample_rate, plan.steps,
    )  # fmt: skip
    run = _DPRun(networks, data, spec, plan, batch_size, epochs, progress)
    return _train_ddp(run) if spec.devices > 1 else _train_private(run)


@dataclass(frozen=True)
class _DPRun:
    """One DP-SGD run as planned: what the one-process and the DDP paths both take."""

    networks: Networks
    data: Prepared
    spec: TrainSpec
    plan: privacy.SGDPlan
    batch_size: int
    epochs: int
    progress: EpochProgress | None


def _train_private(run: _DPRun) -> Trained:
    networks, spec, plan, epochs = run.networks, run.spec, run.plan, run.epochs
    dp, budget, batch_size, progress = spec.dp, run.data.budget, run.batch_size, run.progress
    private = privacy.make_private(
        module=networks.clipped, optimizer=networks.make_optimizer(networks.clipped.parameters()),
        noise_multiplier=plan.noise_multiplier, max_grad_norm=dp.max_grad_norm,
        expected_batch_size=networks.batch_factor * batch_size, sample_rate=plan.sample_rate,
        accountant=dp.accountant, prior=budget.releases,
        grad_sample_mode=spec.grad_sample_mode or entry(spec.generator).clipping,
        device=privacy.noise_device(spec.accelerator),
    )  # fmt: skip
    dp_sgd = stepping(private, plan.steps)
    module = networks.make_module(private.module, private.optimizer, dp_sgd, 0)

    def spent() -> float:
        return privacy.accountant_epsilon(private.accountant, delta=budget.delta_accountant)

    callbacks: list[pl.Callback] = [ProgressCallback(epochs, progress, spent)] if progress else []
    try:
        trainer(spec, epochs, callbacks).fit(module, train_dataloaders=plan.loader)
    finally:
        private.release()
    steps = privacy.steps_beyond(private.accountant.history, budget.releases)
    return Trained(steps, _losses(module), plan.noise_multiplier, plan.sample_rate)


def stepping(private: privacy.PrivateTraining, total_steps: int) -> Stepping:
    """DP-SGD's stepping of a network ``make_private`` wrapped."""
    wrapped: Any = private.module

    def hooks(on: bool) -> None:
        wrapped.enable_hooks() if on else wrapped.disable_hooks()

    has_hooks = hasattr(wrapped, "disable_hooks")
    return Stepping(
        private.backward, private.empty_backward, hooks if has_hooks else None, total_steps
    )


def _train_ddp(run: _DPRun) -> Trained:
    networks, spec, plan, data = run.networks, run.spec, run.plan, run.data
    dp, budget, batch_size, epochs = spec.dp, data.budget, run.batch_size, run.epochs
    clipping = entry(spec.generator).ddp_clipping
    assert clipping is not None  # TrainSpec refuses devices > 1 for the others
    ddp = DPSGDRun(
        noise_multiplier=plan.noise_multiplier, sample_rate=plan.sample_rate, epochs=epochs,
        batch_size=networks.batch_factor * batch_size, max_grad_norm=dp.max_grad_norm,
        accountant=dp.accountant, prior=budget.releases, delta=budget.delta_accountant,
        make_optimizer=networks.make_optimizer, grad_sample_mode=spec.grad_sample_mode or clipping,
        accelerator=spec.accelerator, devices=spec.devices,
    )  # fmt: skip
    factory = functools.partial(rank_module, networks.make_module, plan.steps)
    results = train_ddp(
        networks.clipped, networks.rows_of(data), ddp, factory, progress=run.progress
    )
    steps = privacy.steps_beyond(results[0].history, budget.releases)
    return Trained(steps, [], plan.noise_multiplier, plan.sample_rate)


def rank_module(
    make_module: Any,
    total_steps: int,
    net: Any,
    optimizer: Any,
    private: privacy.PrivateTraining,
    rank: int,
) -> PerRowLossModule:
    """One DDP rank's module (module level: the ranks are spawned, so this pickles).

    DDP steps per-row-loss modules only (each rank takes rank 0's weights after a step).
    """
    module = make_module(net, optimizer, stepping(private, total_steps), rank)
    if not isinstance(module, PerRowLossModule):
        raise TypeError(f"DDP trains per-row-loss modules; the recipe built {type(module)}")
    return module


def _train_plain(
    networks: Networks,
    data: Prepared,
    spec: TrainSpec,
    batch_size: int,
    epochs: int,
    progress: EpochProgress | None,
) -> Trained:
    import torch

    seeded = torch.Generator().manual_seed(spec.seed)
    loader = DataLoader(
        TensorDataset(*networks.rows_of(data)),
        batch_size=batch_size,
        shuffle=True,
        generator=seeded,
    )
    optimizer = networks.make_optimizer(networks.clipped.parameters())
    plain = Stepping(mean_backward, total_steps=len(loader) * epochs)
    module = networks.make_module(networks.clipped, optimizer, plain, 0)
    callbacks: list[pl.Callback] = (
        [ProgressCallback(epochs, progress, lambda: None)] if progress else []
    )
    trainer(spec, epochs, callbacks).fit(module, train_dataloaders=loader)
    return Trained(len(loader) * epochs, _losses(module), None, None)


def _losses(module: pl.LightningModule) -> list[float]:
    """The mean loss of each epoch, as the module kept it (every generator's does)."""
    return [float(loss) for loss in getattr(module, "epoch_losses", [])]

"""The one module that touches Opacus: accounting, noise calibration, DP-SGD wiring.

A run's privacy loss is the composition of two mechanisms, tracked by one accountant:
the Gaussian release of the preprocessing histograms (sampling rate 1, one step) and
DP-SGD (Poisson sampling at ``sample_rate`` for ``steps`` steps). The training noise is
solved for the *composed* epsilon, so the number on the model is end to end.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from opacus.accountants import IAccountant, RDPAccountant, create_accountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.data_loader import DPDataLoader, wrap_collate_with_empty
from opacus.grad_sample import GradSampleModuleFastGradientClipping, get_gsm_class
from opacus.optimizers import (
    DistributedDPOptimizer,
    DistributedDPOptimizerFastGradientClipping,
    DPOptimizer,
    DPOptimizerFastGradientClipping,
)
from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping
from opacus.validators import ModuleValidator
from torch.utils.data import DataLoader, Sampler, TensorDataset
from torch.utils.data._utils.collate import default_collate

from training.dp.bookkeeping import BookkeepingClipper
from training.dp.secret_random import secret_torch_generator
from training.errors import PrivacyConfigError

__all__ = [
    "PrivateTraining",
    "distributed_poisson_loader",
    "epsilon_of",
    "make_private",
    "noise_device",
    "plan_dp_sgd",
    "poisson_loader",
    "solve_preprocessing_noise",
    "solve_training_noise",
    "steps_beyond",
    "uses_cuda",
]

History = list[tuple[float, float, int]]
MAX_NOISE = 1e4
# Opacus' default RDP orders stop at 63, which cannot certify a small epsilon at a small
# delta (log(1/delta) / (alpha - 1) alone exceeds it): epsilon 0.05 at delta 1e-5, the
# preprocessing share of an epsilon 0.5 run, failed. Higher orders close the gap.
RDP_ALPHAS = [1 + x / 10.0 for x in range(1, 100)] + [
    *range(12, 64),
    80,
    100,
    128,
    160,
    200,
    256,
    350,
    500,
    750,
    1_000,
    2_000,
    5_000,
    10_000,
]


@contextlib.contextmanager
def quiet_accounting() -> Iterator[None]:
    """Opacus' warnings while noise is solved or epsilon read: "optimal order is the
    largest alpha" (the bound at the largest order, 10,000, is still a valid upper bound,
    only not the tightest; it fires for the small noise values a bisection tries) and
    numpy's log of zero inside PRV. A CLI fit printed 22 copies of the first."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        yield


def accountant_epsilon(accountant: IAccountant, *, delta: float) -> float:
    """The accountant's epsilon, with the extended RDP orders where RDP is in use."""
    with quiet_accounting():
        if isinstance(accountant, RDPAccountant):
            return float(accountant.get_epsilon(delta=delta, alphas=RDP_ALPHAS))
        return float(accountant.get_epsilon(delta=delta))


def _accountant(name: str, history: History) -> IAccountant:
    accountant = create_accountant(name)
    accountant.history = list(history)
    return accountant


def steps_beyond(history: History, prior: History) -> int:
    """DP-SGD steps an accountant recorded on top of the releases it started with."""
    return sum(s for *_, s in history) - sum(s for *_, s in prior)


def epsilon_of(history: History, *, delta: float, accountant: str) -> float:
    """Epsilon of a composition of (noise_multiplier, sample_rate, steps) mechanisms."""
    if not history:
        return 0.0
    return accountant_epsilon(_accountant(accountant, history), delta=delta)


def solve_preprocessing_noise(*, epsilon: float, delta: float, accountant: str) -> float:
    """Noise multiplier of one Gaussian release (sensitivity 1) costing ``epsilon``."""
    extra = {"alphas": RDP_ALPHAS} if accountant == "rdp" else {}
    with quiet_accounting():
        try:
            return float(
                get_noise_multiplier(
                    target_epsilon=epsilon,
                    target_delta=delta,
                    sample_rate=1.0,
                    steps=1,
                    accountant=accountant,
                    epsilon_tolerance=0.005 * epsilon,
                    **extra,
                )
            )
        except ValueError as e:  # Opacus: "The privacy budget is too low."
            raise PrivacyConfigError(
                f"the preprocessing share epsilon={epsilon:.4g} at delta={delta:.3g} cannot "
                f"be reached with accountant={accountant!r}: raise epsilon or declare the "
                "metadata public"
            ) from e


def solve_training_noise(
    *,
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    prior: History,
    accountant: str,
) -> float:
    """Smallest DP-SGD noise multiplier keeping ``prior`` + training within the target.

    Notes:
        Bisection on the composed epsilon, which decreases in the noise multiplier;
        the returned value is on the safe side (its epsilon is at most the target).
    """
    if epsilon_of(prior, delta=delta, accountant=accountant) >= target_epsilon:
        raise PrivacyConfigError(
            f"preprocessing alone spends the whole target_epsilon={target_epsilon}"
        )

    def eps(z: float) -> float:
        return epsilon_of([*prior, (z, sample_rate, steps)], delta=delta, accountant=accountant)

    lo, hi = 0.05, 1.0
    while eps(hi) > target_epsilon:
        lo, hi = hi, hi * 2
        if hi > MAX_NOISE:
            raise PrivacyConfigError(
                f"target_epsilon={target_epsilon} needs noise_multiplier > {MAX_NOISE} "
                f"at sample_rate={sample_rate:.4g}, steps={steps}; train fewer epochs"
            )
    for _ in range(40):
        if hi - lo < 1e-3 * hi:
            break
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if eps(mid) > target_epsilon else (lo, mid)
    return hi


@dataclass
class PrivateTraining:
    """A network wrapped for per-sample gradients, its DP optimizer and the accountant."""

    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    accountant: IAccountant
    noise_multiplier: float
    sample_rate: float
    sums_in_grad: bool  # the optimizer receives clipped sums in p.grad (ghost, bookkeeping)
    clipper: BookkeepingClipper | None = None

    def backward(self, loss_per_row: torch.Tensor) -> None:
        """Backpropagate the batch-mean loss so the optimizer can clip each row.

        With ghost clipping this runs Opacus' two passes: per-row gradient norms
        without materialising per-row gradients, then the reweighted loss. With
        bookkeeping, one pass (training.dp.bookkeeping).
        """
        if self.clipper is not None:
            self.clipper.backward(loss_per_row)
        elif self.sums_in_grad:
            DPTensorFastGradientClipping(
                self.module, self.optimizer, loss_per_row, loss_reduction="mean"
            ).backward()
        else:
            loss_per_row.mean().backward()

    def release(self) -> None:
        """Remove what training hung on the caller's network (bookkeeping's hooks)."""
        if self.clipper is not None:
            self.clipper.close()

    def empty_backward(self) -> None:
        """What an empty Poisson batch contributes: nothing, so that the step still runs.

        The step must run: skipping it would tell an observer that the batch was empty
        (the accounting assumes noise at every step), and under DDP the other
        processes would wait for this one in the all-reduce.
        """
        for p in self.module.parameters():
            if not p.requires_grad:
                continue
            if self.sums_in_grad:
                p.grad = torch.zeros_like(p)
            else:  # what Opacus' clipping reads: zero rows of per-sample gradients
                p.grad_sample = torch.zeros(  # type: ignore[attr-defined]
                    (0, *p.shape), dtype=p.dtype, device=p.device
                )


def uses_cuda(accelerator: str) -> bool:
    """Whether Lightning trains on a GPU under ``accelerator`` (its "auto" picks one)."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def noise_device(accelerator: str, rank: int = 0) -> str:
    """Where the gradients of a run live, so where its noise generator must be."""
    return f"cuda:{rank}" if uses_cuda(accelerator) else "cpu"


def _per_sample_wrapper(
    module: torch.nn.Module, grad_sample_mode: str, max_grad_norm: float
) -> tuple[torch.nn.Module, BookkeepingClipper | None]:
    """The network as DP-SGD runs it, and bookkeeping's clipper when that is the mode.

    Ghost and bookkeeping hand the optimizer clipped sums; the other modes
    materialise per-sample gradients (Opacus' GradSampleModule).
    """
    if grad_sample_mode == "bookkeeping":
        return module, BookkeepingClipper(module, max_grad_norm=max_grad_norm)
    if grad_sample_mode == "ghost":
        wrapped = GradSampleModuleFastGradientClipping(
            module, batch_first=True, loss_reduction="mean", max_grad_norm=max_grad_norm,
            use_ghost_clipping=True,
        )  # fmt: skip
        return wrapped, None
    options = {"force_functorch": True} if grad_sample_mode == "functorch" else {}
    gsm_class = get_gsm_class(grad_sample_mode)
    return gsm_class(module, batch_first=True, loss_reduction="mean", **options), None


def _dp_optimizer_class(*, sums_in_grad: bool, distributed: bool) -> type[DPOptimizer]:
    if distributed:
        return (
            DistributedDPOptimizerFastGradientClipping if sums_in_grad else DistributedDPOptimizer
        )
    return DPOptimizerFastGradientClipping if sums_in_grad else DPOptimizer


def make_private(
    *,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    noise_multiplier: float,
    max_grad_norm: float,
    expected_batch_size: int,
    sample_rate: float,
    accountant: str,
    prior: History,
    grad_sample_mode: str = "ghost",
    distributed: bool = False,
    device: str | torch.device = "cpu",
) -> PrivateTraining:
    """Wrap ``module`` and ``optimizer`` for DP-SGD and attach an accountant.

    Notes:
        The accountant starts with ``prior`` (the preprocessing release) and records
        one (noise_multiplier, sample_rate) step per optimizer step, so its epsilon
        is the end-to-end one. Noise comes from the optimizer's own generator on
        ``device`` (where training runs), made by ``training.dp.secret_random``: no
        seed, ``PL_GLOBAL_SEED`` or Lightning reset reaches it, so a known seed
        cannot be used to subtract the noise.
        ``distributed``: one process of a DDP run (``training.distributed``): the
        clipped sums are added across processes and only rank 0 adds noise;
        ``expected_batch_size`` is then this process's share of the global batch.
    """
    if noise_multiplier <= 0:
        raise PrivacyConfigError(f"noise_multiplier={noise_multiplier} must be > 0 under DP")
    errors = ModuleValidator.validate(module, strict=False)
    if errors:
        raise PrivacyConfigError(f"module is not DP-compatible: {errors}")
    bookkeeping = grad_sample_mode == "bookkeeping"
    if bookkeeping and distributed:
        raise PrivacyConfigError("bookkeeping clipping runs in one process; use ghost under DDP")
    sums_in_grad = grad_sample_mode == "ghost" or bookkeeping
    wrapped, clipper = _per_sample_wrapper(module, grad_sample_mode, max_grad_norm)
    optimizer_class = _dp_optimizer_class(sums_in_grad=sums_in_grad, distributed=distributed)
    dp_optimizer = optimizer_class(
        optimizer,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        expected_batch_size=expected_batch_size,
        loss_reduction="mean",
        generator=secret_torch_generator(device),
    )
    acct = _accountant(accountant, prior)
    dp_optimizer.attach_step_hook(acct.get_optimizer_hook_fn(sample_rate=sample_rate))
    return PrivateTraining(
        module=wrapped,
        optimizer=dp_optimizer,
        accountant=acct,
        noise_multiplier=noise_multiplier,
        sample_rate=sample_rate,
        sums_in_grad=sums_in_grad,
        clipper=clipper,
    )


@dataclass(frozen=True)
class SGDPlan:
    """A DP-SGD run before it starts: its batches, rate, length and noise."""

    loader: DPDataLoader
    sample_rate: float
    steps: int
    noise_multiplier: float


def plan_dp_sgd(
    dataset: TensorDataset,
    *,
    batch_size: int,
    rows: float,
    epochs: int,
    target_epsilon: float,
    delta: float,
    prior: History,
    accountant: str,
) -> SGDPlan:
    """Poisson batches of expected size ``batch_size`` out of ``rows`` (the DP count) for
    ``epochs``, and the noise keeping ``prior`` plus them within ``target_epsilon``."""
    sample_rate = min(batch_size / rows, 1.0)
    loader = poisson_loader(dataset, sample_rate=sample_rate)
    steps = len(loader) * epochs  # the loader's epoch is int(1 / sample_rate) steps
    z = solve_training_noise(
        target_epsilon=target_epsilon, delta=delta, sample_rate=sample_rate, steps=steps,
        prior=prior, accountant=accountant,
    )  # fmt: skip
    return SGDPlan(loader, sample_rate, steps, z)


def poisson_loader(dataset: TensorDataset, *, sample_rate: float) -> DPDataLoader:
    """A loader that includes each row independently with probability ``sample_rate``.

    Notes:
        Amplification by sampling holds only if the batches are secret, so the
        sampling generator is a secret one (``training.dp.secret_random``).
    """
    return DPDataLoader(dataset, sample_rate=sample_rate, generator=secret_torch_generator())


class _DistributedPoissonSampler(Sampler[list[int]]):
    """This process's rows (every ``world``-th, from ``rank``), each drawn with
    probability ``sample_rate`` per step; empty batches are yielded, not skipped.

    Opacus' distributed sampler skips an empty batch, which leaves that process one
    step short and the others waiting for it in the all-reduce; every process here
    takes the same ``steps`` steps per epoch.
    """

    def __init__(self, rows: int, *, sample_rate: float, steps: int, rank: int, world: int) -> None:
        self.indices = torch.arange(rank, rows, world)
        self.sample_rate, self.steps = sample_rate, steps
        self.generator = secret_torch_generator()

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):  # type: ignore[no-untyped-def]
        for _ in range(self.steps):
            drawn = torch.rand(len(self.indices), generator=self.generator) < self.sample_rate
            yield self.indices[drawn].tolist()


def distributed_poisson_loader(
    dataset: TensorDataset, *, sample_rate: float, rank: int, world: int
) -> DataLoader[tuple[torch.Tensor, ...]]:
    """This process's part of one Poisson sample of ``dataset`` per step.

    Notes:
        Each row is in exactly one process's shard and drawn there with probability
        ``sample_rate``, so the union of the processes' batches is a Poisson sample of
        the whole table at that rate: the mechanism the accountant charges. The
        shard is a fixed public split (row position modulo ``world``); the draws
        come from OS entropy in every process.
    """
    sampler = _DistributedPoissonSampler(
        len(dataset), sample_rate=sample_rate, steps=int(1 / sample_rate), rank=rank,
        world=world,
    )  # fmt: skip
    first = dataset[0]
    collate = wrap_collate_with_empty(
        collate_fn=default_collate, sample_empty_shapes=[(0, *x.shape) for x in first],
        dtypes=[x.dtype for x in first],
    )  # fmt: skip
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)

import math

import pytest
import torch
from scipy.stats import norm

from training import privacy
from training.errors import PrivacyConfigError


def _analytic_gaussian_delta(eps: float, z: float) -> float:
    """Exact delta(eps) of the Gaussian mechanism with noise multiplier z (Balle & Wang 2018)."""
    return norm.cdf(1 / (2 * z) - eps * z) - math.exp(eps) * norm.cdf(-1 / (2 * z) - eps * z)


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_preprocessing_noise_meets_its_epsilon(accountant):
    z = privacy.solve_preprocessing_noise(epsilon=0.3, delta=1e-5, accountant=accountant)
    eps = privacy.epsilon_of([(z, 1.0, 1)], delta=1e-5, accountant=accountant)
    assert eps <= 0.3 * 1.01
    # the exact Gaussian curve must agree that (eps, 1e-5) holds at this z
    assert _analytic_gaussian_delta(eps, z) <= 1e-5 * 1.05


def test_prv_is_tight_and_safe_against_the_exact_gaussian_curve():
    z = 5.0
    eps = privacy.epsilon_of([(z, 1.0, 1)], delta=1e-5, accountant="prv")
    # PRV's epsilon is an upper bound: safe (delta at it <= 1e-5) but not loose
    assert 0.5e-5 <= _analytic_gaussian_delta(eps, z) <= 1e-5


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_training_noise_keeps_the_composition_within_target(accountant):
    prior = [(30.0, 1.0, 1)]
    z = privacy.solve_training_noise(
        target_epsilon=1.0,
        delta=1e-5,
        sample_rate=0.2,
        steps=150,
        prior=prior,
        accountant=accountant,
    )
    eps = privacy.epsilon_of([*prior, (z, 0.2, 150)], delta=1e-5, accountant=accountant)
    assert 0.97 <= eps <= 1.0


def test_preprocessing_that_eats_the_budget_is_refused():
    with pytest.raises(PrivacyConfigError, match="preprocessing alone"):
        privacy.solve_training_noise(
            target_epsilon=0.1, delta=1e-5, sample_rate=0.1, steps=10,
            prior=[(1.0, 1.0, 1)], accountant="rdp",
        )  # fmt: skip


@pytest.mark.parametrize("mode", ["bookkeeping", "ghost", "hooks"])
def test_noise_std_is_sigma_times_c_over_batch_on_a_zero_gradient(mode):
    torch.manual_seed(0)
    net = torch.nn.Linear(200, 100)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    private = privacy.make_private(
        module=net, optimizer=opt, noise_multiplier=2.0, max_grad_norm=0.5,
        expected_batch_size=16, sample_rate=0.1, accountant="rdp", prior=[], grad_sample_mode=mode,
    )  # fmt: skip
    x = torch.randn(16, 200)
    private.optimizer.zero_grad()
    private.backward((private.module(x) * 0.0).sum(1))
    before = net.weight.detach().clone()
    private.optimizer.step()
    change = (before - net.weight.detach()).flatten()
    assert change.std().item() == pytest.approx(2.0 * 0.5 / 16, rel=0.03)
    assert private.accountant.history == [(2.0, 0.1, 1)]


def test_clipping_bounds_each_rows_gradient():
    torch.manual_seed(0)
    net = torch.nn.Linear(20, 1)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    private = privacy.make_private(
        module=net, optimizer=opt, noise_multiplier=1.0, max_grad_norm=0.1,
        expected_batch_size=8, sample_rate=0.1, accountant="rdp", prior=[],
        grad_sample_mode="hooks",
    )  # fmt: skip
    x = torch.randn(8, 20) * 100  # per-row gradients far above the clipping norm
    private.optimizer.zero_grad()
    private.backward(private.module(x).pow(2).sum(1))
    raw = torch.cat([p.grad_sample.flatten(1) for p in net.parameters()], 1)  # (B, P)
    assert (raw.norm(dim=1) > 0.1).all()
    private.optimizer.clip_and_accumulate()
    summed = torch.cat([p.summed_grad.flatten() for p in net.parameters()])
    # each clipped row has norm <= C, so their sum has norm <= B * C
    assert summed.norm() <= 8 * 0.1 + 1e-5
    assert raw.sum(0).norm() > 100 * 8 * 0.1


def test_zero_noise_under_dp_is_refused():
    net = torch.nn.Linear(4, 1)
    with pytest.raises(PrivacyConfigError, match="noise_multiplier"):
        privacy.make_private(
            module=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.1), noise_multiplier=0.0,
            max_grad_norm=1.0, expected_batch_size=8, sample_rate=0.1, accountant="rdp", prior=[],
        )  # fmt: skip


def test_poisson_sampling_is_in_force_on_a_real_table(cps):
    """Each row joins each batch independently: sizes vary around q * n, never fixed."""
    from torch.utils.data import TensorDataset

    wages = torch.tensor(cps["wage"].to_numpy(), dtype=torch.float32)
    q = 0.01
    loader = privacy.poisson_loader(TensorDataset(wages), sample_rate=q)
    sizes = [len(batch) for (batch,) in loader]
    assert len(sizes) == int(1 / q)
    assert len(set(sizes)) > 10  # a fixed-size sampler gives one size
    n = len(wages)
    mean, spread = sum(sizes) / len(sizes), (n * q * (1 - q)) ** 0.5
    assert abs(mean - n * q) < 4 * spread / len(sizes) ** 0.5
    # two loaders draw different batches: the sampling seed is the OS's, not the user's
    again = [len(batch) for (batch,) in privacy.poisson_loader(TensorDataset(wages), sample_rate=q)]
    assert again != sizes

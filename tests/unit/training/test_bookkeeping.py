"""Bookkeeping clipping against per-row gradients computed one row at a time.

The clipped sum it leaves in p.grad is what DP-SGD noises: if it differed from
sum_i clip(grad_i), the privacy guarantee would not hold. torch.func's vmap(grad)
gives the per-row gradients independently of the formulas under test.
"""

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

import training
from training import privacy
from training.dp.bookkeeping import BookkeepingClipper, supports
from training.errors import PrivacyConfigError
from training.generators.tabular_ar.module import hidden_columns, per_row_loss
from training.generators.tabular_ar.network import TabularAR, TabularARConfig
from training.preprocessing import fit_encoders
from training.schema import infer_schema


@pytest.fixture(scope="module")
def cps_tokens(cps):
    encoder = fit_encoders(
        cps, infer_schema(cps), sigma=0.0, delta_selection=0.0, max_bins=32,
        rng=np.random.default_rng(0),
    ).encoder  # fmt: skip
    return torch.from_numpy(encoder.encode(cps.iloc[:512])), encoder.vocab_sizes


def _clipped_sums(net, per_row_loss_of, inputs, max_grad_norm):
    """sum_i clip(grad_i) and the row norms, one row at a time through vmap."""
    params = {k: v.detach() for k, v in net.named_parameters()}

    def one(p, *row):
        return per_row_loss_of(lambda x: functional_call(net, p, (x,)), *[r[None] for r in row])[0]

    per_row = vmap(grad(one), in_dims=(None, *[0] * len(inputs)))(params, *inputs)
    norms = torch.sqrt(sum(g.flatten(1).square().sum(1) for g in per_row.values()))
    scale = (max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
    sums = {k: (g * scale.view(-1, *[1] * (g.dim() - 1))).sum(0) for k, g in per_row.items()}
    return sums, norms


def test_tabular_ar_clipped_sum_matches_per_row_gradients(cps_tokens):
    tokens, vocab = cps_tokens
    torch.manual_seed(0)
    net = TabularAR(TabularARConfig(vocab_sizes=vocab, hidden_size=64, depth=2))
    hidden = hidden_columns(len(tokens), len(vocab), torch.Generator().manual_seed(0))
    masked = net.mask(tokens, hidden)

    def loss_of(forward, masked, tokens, hidden):
        return per_row_loss(list(torch.split(forward(masked), vocab, dim=1)), tokens, hidden)

    expected, norms = _clipped_sums(net, loss_of, (masked, tokens, hidden), 1.0)
    max_grad_norm = float(norms.median())  # half the rows clipped, half not
    expected, _ = _clipped_sums(net, loss_of, (masked, tokens, hidden), max_grad_norm)
    clipper = BookkeepingClipper(net, max_grad_norm=max_grad_norm)
    clipper.backward(loss_of(net, masked, tokens, hidden))
    torch.testing.assert_close(clipper.last_norms, norms, rtol=1e-4, atol=1e-6)
    for name, param in net.named_parameters():
        torch.testing.assert_close(param.grad, expected[name], rtol=1e-4, atol=1e-5)


class _SharedTable(nn.Module):
    """Two columns looked up in one table: a row can hit the same token twice."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(size, 8)
        self.out = nn.Linear(16, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(tokens).flatten(1))


def test_an_embedding_row_that_repeats_a_token_adds_before_it_clips(cps_tokens):
    tokens, vocab = cps_tokens
    small = [j for j, v in enumerate(vocab) if v <= 6][:2]  # e.g. region and parttime
    pairs = tokens[:, small]
    assert (pairs[:, 0] == pairs[:, 1]).float().mean() > 0.05  # the case under test occurs
    torch.manual_seed(0)
    net = _SharedTable(int(pairs.max()) + 1)
    target = tokens[:, 0].float()

    def loss_of(forward, pairs, target):
        return (forward(pairs).squeeze(1) - target).square()

    expected, norms = _clipped_sums(net, loss_of, (pairs, target), 1.0)
    max_grad_norm = float(norms.median())
    expected, _ = _clipped_sums(net, loss_of, (pairs, target), max_grad_norm)
    clipper = BookkeepingClipper(net, max_grad_norm=max_grad_norm)
    clipper.backward(loss_of(net, pairs, target))
    for name, param in net.named_parameters():
        torch.testing.assert_close(param.grad, expected[name], rtol=1e-4, atol=1e-5)


def test_layers_it_cannot_clip_are_refused():
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4, 1))
    assert not supports(conv)
    assert not supports(nn.Embedding(10, 4, padding_idx=0))
    with pytest.raises(PrivacyConfigError, match="Linear, Embedding and LayerNorm"):
        BookkeepingClipper(conv, max_grad_norm=1.0)
    with pytest.raises(ValueError, match="bookkeeping"):
        training.TrainSpec(generator="tabular-gan", grad_sample_mode="bookkeeping")


def test_hooks_come_off_when_training_ends(cps_tokens):
    tokens, vocab = cps_tokens
    net = TabularAR(TabularARConfig(vocab_sizes=vocab))
    private = privacy.make_private(
        module=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.1), noise_multiplier=1.0,
        max_grad_norm=1.0, expected_batch_size=64, sample_rate=0.01, accountant="rdp",
        prior=[], grad_sample_mode="bookkeeping",
    )  # fmt: skip
    private.release()
    net(tokens)  # with grad enabled: nothing may be kept
    assert all(not r.inputs for r in private.clipper.records)

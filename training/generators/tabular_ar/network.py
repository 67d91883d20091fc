"""Any-order autoregressive network over the columns of a table.

Each row is a sequence of column tokens. During training a random subset of columns
is hidden (replaced by a per-column MASK token) and the network predicts every hidden
column from the visible ones: order-agnostic training (Uria et al., 2014), so one
network gives p(column | any subset of other columns). Sampling fills columns one at
a time, which lets any subset of columns be fixed by ``where=``.

Embedding + Linear + LayerNorm only: every layer has an Opacus per-sample gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, cast, runtime_checkable

import torch
from torch import nn

__all__ = ["TabularAR", "TabularARConfig", "bf16_matmul", "generate", "log_likelihood"]


@dataclass
class TabularARConfig:
    vocab_sizes: list[int] = field(default_factory=list)  # tokens per column, MASK excluded
    embedding_dim: int = 16
    hidden_size: int = 256
    depth: int = 2


class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, width)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc(self.act(self.norm(x)))


class TabularAR(nn.Module):
    offsets: torch.Tensor
    mask_ids: torch.Tensor

    def __init__(self, config: TabularARConfig) -> None:
        super().__init__()
        self.config = config
        sizes = torch.tensor(config.vocab_sizes)
        # one shared table: column j's tokens (and its MASK) start at offsets[j]
        self.register_buffer("offsets", torch.cumsum(sizes + 1, 0) - (sizes + 1), persistent=False)
        self.register_buffer("mask_ids", sizes.clone(), persistent=False)
        n_columns = len(config.vocab_sizes)
        self.embed = nn.Embedding(int((sizes + 1).sum()), config.embedding_dim)
        self.proj = nn.Linear(n_columns * config.embedding_dim, config.hidden_size)
        self.blocks = nn.Sequential(
            *[ResidualBlock(config.hidden_size) for _ in range(config.depth)]
        )
        self.norm = nn.LayerNorm(config.hidden_size)
        self.head = nn.Linear(config.hidden_size, int(sizes.sum()))

    def mask(self, tokens: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Replace hidden positions by their column's MASK token.  (B, C) -> (B, C)"""
        return torch.where(hidden, self.mask_ids.expand_as(tokens), tokens)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits of every column given the (partly masked) row.  (B, C) -> (B, sum V)"""
        x = self.embed(tokens + self.offsets)  # (B, C, E)
        x = self.proj(x.flatten(1))  # (B, H)
        x = self.blocks(x)
        return self.head(self.norm(x))

    def column_logits(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """Split (B, sum V) logits into one (B, V_j) tensor per column."""
        return list(torch.split(logits, self.config.vocab_sizes, dim=1))


# share one network pass among rows whose filled columns agree while the distinct
# prefixes are at most this share of the rows (a prefix count only grows column by column)
SHARED_PREFIX_SHARE = 0.75
_MAX_PREFIX_ID = 2**62  # prefix ids are mixed-radix int64


@torch.no_grad()
def _running_projection(
    model: TabularAR, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The input projection of ``tokens`` (N, H) and, per token, what filling its column
    adds to it (the delta rows): the projection is linear in the per-column embeddings."""
    config = model.config
    n, c = tokens.shape
    w = model.proj.weight.view(config.hidden_size, c, config.embedding_dim)  # (H, C, E)
    column_of = torch.repeat_interleave(
        torch.arange(c, device=tokens.device),
        torch.tensor(config.vocab_sizes, device=tokens.device) + 1,
    )
    table = torch.einsum("gE,gHE->gH", model.embed.weight, w.permute(1, 0, 2)[column_of])
    mask_rows = table[model.mask_ids + model.offsets]  # (C, H)
    delta = table - mask_rows[column_of]  # filling a column adds its token's row of delta
    h0 = (model.proj.bias + mask_rows.sum(0)).expand(n, -1).clone()  # (N, H)
    for k in range(c):  # column by column: an (N, C, H) gather would cost C times the memory
        if bool((tokens[:, k] != model.mask_ids[k]).any()):
            h0 += delta[tokens[:, k] + model.offsets[k]]
    return h0, delta


def _shared(prefix: torch.Tensor | None, n: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Each row's prefix group and one row per group, while groups are few enough."""
    if prefix is None:
        return None, None
    distinct, inverse = torch.unique(prefix, return_inverse=True)
    if len(distinct) > SHARED_PREFIX_SHARE * n:
        return None, None
    first = torch.empty(len(distinct), dtype=torch.long, device=prefix.device)
    first.scatter_(0, inverse, torch.arange(n, device=prefix.device))
    return inverse, first


def bf16_matmul(device: torch.device) -> bool:
    """Whether ``device`` is a CPU with bfloat16 multiply instructions (AVX512-BF16 or
    AMX). Read off the CPU, never timed, so that one machine always draws the same rows
    for a seed; a CPU without them would emulate bfloat16 slower than float32."""
    if device.type != "cpu":
        return False
    capability: dict[str, object] = getattr(torch._C._cpu, "_get_cpu_capability", dict)()
    return bool(capability.get("avx512_bf16") or capability.get("amx_bf16"))


class _Trunk:
    """The network below its heads, as sampling runs it.

    The residual blocks' matrix products were about half of a draw at 15 columns (one
    thread: 78,000-95,000 rows/s against issue 21's 100,000). With ``bf16`` they run in
    bfloat16, four times faster on this workplace's AVX512-BF16 CPUs, while the
    residual stream, the layer norms and the heads stay float32: the blocks add a
    delta rounded to 8 bits of mantissa, far inside the DP noise the weights carry
    (DoctorContacts: all-pairs TVD 0.0576 against 0.0577, three seeds each).
    """

    def __init__(self, model: TabularAR, *, bf16: bool) -> None:
        self.model = model
        self.blocks = [cast(ResidualBlock, block) for block in model.blocks]
        self.low: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        if bf16:
            low = torch.bfloat16
            self.low = [
                (block.fc.bias.to(low), block.fc.weight.to(low).T.contiguous())
                for block in self.blocks
            ]

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        if self.low is None:
            return self.model.norm(self.model.blocks(rows))
        x = rows
        for block, (bias, weight) in zip(self.blocks, self.low, strict=True):
            x = x + torch.addmm(bias, block.act(block.norm(x)).to(torch.bfloat16), weight).float()
        return self.model.norm(x)


@runtime_checkable
class FitsWhileDrawing(Protocol):
    """A tilt that fits itself on the rows being drawn (``FittingTilt``)."""

    def __call__(self, column: int, tokens: torch.Tensor) -> torch.Tensor | None: ...

    def fit(
        self, column: int, tokens: torch.Tensor, logits: torch.Tensor, weights: torch.Tensor
    ) -> None: ...


@torch.no_grad()
def generate(
    model: TabularAR,
    tokens: torch.Tensor,
    *,
    order: list[int],
    banned: list[list[int]],
    generator: torch.Generator,
    tilt: Callable[[int, torch.Tensor], torch.Tensor | None] | None = None,
    ruled_out: Callable[[int, torch.Tensor], torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """Fill the columns listed in ``order`` one at a time, by inverse CDF.  (N, C) -> (N, C)

    ``tilt(j, rows)``, when given, adds log-factors to column j's logits for the rows'
    tokens drawn so far (a calibration's measured marginals, ``ConditionalTilt``).
    ``ruled_out(j, rows)`` works alike with 0 / -inf (declared rules, ``OrderMask``),
    before the tilt, so a tilt being fitted sees what sampling will draw from.

    ``tokens`` holds MASK ids at the columns to fill and fixed tokens elsewhere. The
    input projection is linear in the per-column embeddings, so it is kept as a running
    sum of per-token rows and updated as each column is filled. While few distinct
    prefixes exist (the first columns of rows that start alike: the first column has
    one, the next at most V_1; real tables reach a few thousand in 16k rows after
    five columns), the network runs once per prefix, not once per row, and the running
    sum is kept per prefix too (``_Prefixes``). Where the CPU has bfloat16 instructions
    (``bf16_matmul``) the residual blocks' products run in bfloat16 (``_Trunk``).
    """
    config = model.config
    trunk = _Trunk(model, bf16=bf16_matmul(tokens.device))
    n = tokens.shape[0]
    alike = bool(n) and bool((tokens == tokens[0]).all())
    h0, delta = _running_projection(model, tokens[:1] if alike else tokens)
    state = _Prefixes(h0, n) if alike else None
    heads_w = torch.split(model.head.weight, config.vocab_sizes, dim=0)
    heads_b = torch.split(model.head.bias, config.vocab_sizes, dim=0)
    for j in order:
        inverse = first = None
        if state is not None:
            inverse, first = _shared(state.prefix, n)
            if inverse is None or first is None:
                h0, state = state.per_row(delta), None
            else:
                state.regroup(inverse, first, delta)
        if state is None:
            rows, row_tokens = h0, tokens
        else:
            rows, row_tokens = state.h, tokens[first]
        h = trunk(rows)  # (N or prefixes, H)
        logits = torch.addmm(heads_b[j], h, heads_w[j].T)  # (N or prefixes, V_j)
        _rule_out(logits, banned[j], ruled_out, j, row_tokens)
        _tilted(tilt, j, row_tokens, logits, inverse, n)
        drawn = _inverse_cdf(logits, inverse, n, generator)
        tokens[:, j] = drawn
        if state is None:
            h0 += delta.index_select(0, drawn + model.offsets[j])
        else:
            state.drew(drawn, drawn + model.offsets[j], config.vocab_sizes[j])
    return tokens


def _inverse_cdf(
    logits: torch.Tensor, inverse: torch.Tensor | None, n: int, generator: torch.Generator
) -> torch.Tensor:
    """One token per row from ``logits`` (consumed), a prefix's row for each row when
    ``inverse`` is given.  (N,)"""
    # unnormalized CDF: the draw scales u by the total instead of dividing by it
    cdf = logits.sub_(logits.amax(1, keepdim=True)).exp_().cumsum_(1)
    if inverse is not None:
        cdf = cdf[inverse]  # (N, V_j)
    u = torch.rand(n, 1, generator=generator, device=logits.device)
    drawn = torch.searchsorted(cdf, u.mul_(cdf[:, -1:])).squeeze_(1)
    return drawn.clamp_(max=logits.shape[1] - 1)


class _Prefixes:
    """The rows' running projections while rows share prefixes: one per prefix.

    Adding each drawn token's delta row to every row's (N, H) projection cost an eighth
    of the draw on DoctorContacts; while the rows fall into a few thousand prefixes, the
    projection is kept per prefix and spread to the rows only once they no longer do.
    """

    def __init__(self, h: torch.Tensor, n: int) -> None:
        self.h = h  # (groups, H): the projection of each prefix group, before ``pending``
        self.group = torch.zeros(n, dtype=torch.long, device=h.device)  # row -> group
        self.pending: torch.Tensor | None = None  # (N,) delta row of each row's last draw
        self.prefix: torch.Tensor | None = torch.zeros(n, dtype=torch.long, device=h.device)
        self.radix = 1

    def regroup(self, inverse: torch.Tensor, first: torch.Tensor, delta: torch.Tensor) -> None:
        """Rows now grouped by ``inverse``, ``first`` a row of each group."""
        h = self.h[self.group[first]]
        if self.pending is not None:
            h += delta.index_select(0, self.pending[first])
        self.h, self.group, self.pending = h, inverse, None

    def per_row(self, delta: torch.Tensor) -> torch.Tensor:
        """Every row's own projection.  (N, H)"""
        h = self.h[self.group]
        if self.pending is not None:
            h += delta.index_select(0, self.pending)
        return h

    def drew(self, drawn: torch.Tensor, rows_of_delta: torch.Tensor, vocab: int) -> None:
        """Column drawn: each row's token and its delta row (added at the next regroup)."""
        self.pending = rows_of_delta
        self.radix *= vocab
        if self.prefix is not None and self.radix < _MAX_PREFIX_ID:
            self.prefix = self.prefix * vocab + drawn
        else:
            self.prefix = None


def _rule_out(
    logits: torch.Tensor,
    banned: list[int],
    ruled_out: Callable[[int, torch.Tensor], torch.Tensor | None] | None,
    column: int,
    tokens: torch.Tensor,
) -> None:
    """-inf in place for tokens never sampled and for those a declared rule rules out."""
    if banned:
        logits[:, banned] = float("-inf")
    if ruled_out is not None and (rule := ruled_out(column, tokens)) is not None:
        logits += rule


def _tilted(
    tilt: Callable[[int, torch.Tensor], torch.Tensor | None] | None,
    column: int,
    tokens: torch.Tensor,
    logits: torch.Tensor,
    inverse: torch.Tensor | None,
    n: int,
) -> None:
    """Add the tilt's log-factors to ``logits`` in place; a tilt being fitted first fits
    on these rows, each standing for as many rows as share its prefix."""
    if isinstance(tilt, FitsWhileDrawing):
        stands_for = torch.ones(n) if inverse is None else torch.bincount(inverse)
        tilt.fit(column, tokens, logits, stands_for)
    if tilt is not None and (extra := tilt(column, tokens)) is not None:
        logits += extra


@torch.no_grad()
def log_likelihood(model: TabularAR, tokens: torch.Tensor, *, chain: bool = True) -> torch.Tensor:
    """Log-probability of each row's tokens.  (N, C) -> (N,)

    ``chain=True``: the chain rule in column order, log p(x_1) + log p(x_2 | x_1) + ...,
    the model's joint likelihood. ``chain=False``: sum of log p(x_j) with every other
    column hidden, the likelihood as if the columns were independent; the difference
    of the two says how much the model ties this row's values together.
    """
    n, c = tokens.shape
    total = torch.zeros(n)
    for j in range(c):
        hidden = torch.zeros(n, c, dtype=torch.bool)
        hidden[:, j:] = True
        if not chain:
            hidden[:] = True
        logits = model.column_logits(model(model.mask(tokens, hidden)))[j]
        total += torch.log_softmax(logits, dim=1).gather(1, tokens[:, j : j + 1]).squeeze(1)
    return total

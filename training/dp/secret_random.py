"""The one source of privacy randomness: the operating system's entropy, through ``secrets``.

Why one module: a DP guarantee assumes the noise is unknown to the adversary. Noise
drawn from torch's or numpy's global generators can be fixed from outside the
mechanism: ``pl.seed_everything``, ``PL_GLOBAL_SEED`` (Lightning's DDP strategy
reseeds every rank from it), ``torch.manual_seed`` in user code, a test fixture. Every
draw that a privacy proof relies on (DP-SGD noise, Poisson sampling, preprocessing
and calibration noise, partition selection, the train/holdout split) takes a
dedicated generator built here, seeded with 128 bits from ``secrets`` at the moment
it is made, and used nowhere else. Nothing here reads a seed, a setting or an
environment variable, so nothing outside can fix it.

Randomness that needs no secrecy (weight initialisation, dropout, the any-order
masks, sampling from a released model) may follow the user's seed; it is not drawn
here.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["secret_bits", "secret_numpy_rng", "secret_torch_generator"]

SEED_BITS = 128


def secret_bits(bits: int = SEED_BITS) -> int:
    """Fresh bits from the OS: the root of every privacy draw."""
    return secrets.randbits(bits)


def secret_numpy_rng() -> np.random.Generator:
    """A numpy generator no seed can reproduce (for noise on histograms and marginals)."""
    return np.random.Generator(np.random.PCG64(secret_bits()))


def secret_torch_generator(device: str | torch.device = "cpu") -> torch.Generator:
    """A torch generator on ``device`` no seed can reproduce (DP-SGD noise, Poisson batches).

    torch seeds take 64 bits; the state is then private to this generator, so a later
    ``torch.manual_seed`` or Lightning reset touches the global generators only.
    """
    import torch

    generator = torch.Generator(device=device)
    generator.manual_seed(secret_bits(63))
    return generator

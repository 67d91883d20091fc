"""What every trained generator offers, whatever its modality: the typed face of ``fit``.

Tables and images differ in what a sample is (a DataFrame, an ``ImageSet``) and in what
conditions it (``where=``, ``label=``); saving, loading, the privacy accounting and the
fit summary are common. ``Scorer`` is the extra face of a generator with a likelihood
(``registry.GeneratorEntry.likelihood``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from training.spec import FitSummary, PrivacyReport

__all__ = ["Scorer", "TrainedGenerator"]


@runtime_checkable
class TrainedGenerator(Protocol):
    name: str
    privacy: PrivacyReport
    summary: FitSummary
    training: dict[str, Any]

    def sample(self, n: int, *, seed: int | None = None) -> Any: ...

    def save(self, directory: str | Path) -> Path: ...


@runtime_checkable
class Scorer(Protocol):
    def log_likelihood(self, data: Any) -> np.ndarray: ...

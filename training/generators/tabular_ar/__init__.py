"""tabular-ar: the trained any-order autoregressive table generator (sample, save, load).

Fitting lives in ``recipe``: sampling needs neither Lightning nor Opacus, and
importing them cost a sampler process seconds before its first row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from training.calibration import Tilt
from training.errors import ConditionError
from training.generators.table_generator import DEFAULT_CHUNK, TableGenerator
from training.generators.tabular_ar.network import (
    TabularAR,
    TabularARConfig,
    generate,
    log_likelihood,
)
from training.order_mask import OrderMask

__all__ = ["ARTIFACT", "DEFAULT_CHUNK", "NAME", "TabularARGenerator"]

NAME = "tabular-ar"


class TabularARGenerator(TableGenerator):
    """A trained tabular-ar model: sample rows, score rows, save, load."""

    name = NAME
    net: TabularAR
    calibration_applied = "conditionals"

    def log_likelihood(self, frame: pd.DataFrame, *, chain: bool = True) -> np.ndarray:
        """Log-probability of each row of ``frame`` under the model (numbers by their bin).

        ``chain=False`` scores each column alone; an audit's attack uses the difference.
        """
        missing = sorted(set(self.columns) - set(frame.columns))
        if missing:
            raise ConditionError(f"rows to score lack columns {missing}")
        tokens = torch.from_numpy(self.encoder.encode(frame))
        return log_likelihood(self.net, tokens, chain=chain).numpy()

    def draw(
        self,
        size: int,
        fixed: dict[int, int],
        generator: torch.Generator,
        tilt: Tilt | None = None,
    ) -> torch.Tensor:
        tokens = self.net.mask_ids.repeat(size, 1).clone()
        for j, token in fixed.items():
            tokens[:, j] = token
        order = [j for j in range(len(self.columns)) if j not in fixed]
        banned = [enc.never_sampled() for enc in self.encoder.columns]
        rules = OrderMask.build(self.schema.constraints, self.encoder, list(fixed))
        return generate(
            self.net, tokens, order=order, banned=banned, generator=generator, tilt=tilt,
            ruled_out=rules,
        )  # fmt: skip

    @classmethod
    def build_net(cls, model: dict[str, Any]) -> TabularAR:
        return TabularAR(TabularARConfig(**model))


ARTIFACT = TabularARGenerator

"""tabular-ar: the trained any-order autoregressive table generator (sample, save, load).

Fitting lives in ``tabular_ar_fit``: sampling needs neither Lightning nor Opacus, and
importing them cost a sampler process seconds before its first row.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from training.artifacts import load_artifact, save_artifact
from training.encoding import TableEncoder
from training.errors import ArtifactError, ConditionError
from training.models.tabular_ar import TabularAR, TabularARConfig, generate, log_likelihood
from training.schema import Scalar, TableSchema
from training.spec import FitSummary, PrivacyReport

__all__ = ["DEFAULT_CHUNK", "NAME", "TabularARGenerator"]

NAME = "tabular-ar"
# rows per sampling step: 4k-16k ran about twice as fast as 100k (cache-sized tensors)
DEFAULT_CHUNK = 16_384


class TabularARGenerator:
    """A trained tabular-ar model: sample rows, save, load."""

    name = NAME

    def __init__(
        self,
        *,
        schema: TableSchema,
        encoder: TableEncoder,
        net: TabularAR,
        privacy: PrivacyReport,
        summary: FitSummary,
        training: dict[str, Any],
    ) -> None:
        self.schema, self.encoder, self.net = schema, encoder, net
        self.privacy, self.summary, self.training = privacy, summary, training

    @property
    def columns(self) -> list[str]:
        return self.encoder.names

    def sample(
        self, n: int, *, seed: int | None = None, where: Mapping[str, Scalar | None] | None = None
    ) -> pd.DataFrame:
        """``n`` synthetic rows; ``where`` fixes columns to exact values."""
        chunks = list(self.sample_chunks(n, seed=seed, where=where))
        if not chunks:
            return self._empty()
        return pd.concat(chunks, ignore_index=True)

    def sample_chunks(
        self,
        n: int,
        *,
        seed: int | None = None,
        where: Mapping[str, Scalar | None] | None = None,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> Iterator[pd.DataFrame]:
        """Stream ``n`` rows in chunks of at most ``chunk_size``: memory stays bounded."""
        fixed = self._fixed_tokens(where or {})
        seeds = np.random.SeedSequence(seed).spawn(math.ceil(n / chunk_size))
        for i, chunk_seed in enumerate(seeds):
            size = min(chunk_size, n - i * chunk_size)
            yield self._sample_chunk(size, fixed, where or {}, chunk_seed)

    def log_likelihood(self, frame: pd.DataFrame, *, chain: bool = True) -> np.ndarray:
        """Log-probability of each row of ``frame`` under the model (numbers by their bin).

        ``chain=False`` scores each column alone; an audit's attack uses the difference.
        """
        missing = sorted(set(self.columns) - set(frame.columns))
        if missing:
            raise ConditionError(f"rows to score lack columns {missing}")
        tokens = torch.from_numpy(self.encoder.encode(frame))
        return log_likelihood(self.net, tokens, chain=chain).numpy()

    def _fixed_tokens(self, where: Mapping[str, Scalar | None]) -> dict[int, int]:
        unknown = sorted(set(where) - set(self.columns))
        if unknown:
            raise ConditionError(f"where= names unknown columns {unknown}; known: {self.columns}")
        index = {c.name: j for j, c in enumerate(self.encoder.columns)}
        fixed = {}
        for name, value in where.items():
            enc = self.encoder.columns[index[name]]
            enc.exact_value(value)
            fixed[index[name]] = enc.token_of(value)
        return fixed

    def _sample_chunk(
        self,
        size: int,
        fixed: dict[int, int],
        where: Mapping[str, Scalar | None],
        seed: np.random.SeedSequence,
    ) -> pd.DataFrame:
        torch_seed, numpy_seed = seed.generate_state(2)
        tokens = self.net.mask_ids.repeat(size, 1).clone()
        for j, token in fixed.items():
            tokens[:, j] = token
        order = [j for j in range(len(self.columns)) if j not in fixed]
        banned = [enc.never_sampled() for enc in self.encoder.columns]
        generator = torch.Generator().manual_seed(int(torch_seed))
        drawn = generate(self.net, tokens, order=order, banned=banned, generator=generator)
        frame = self.encoder.decode(drawn.numpy(), np.random.default_rng(int(numpy_seed)))
        for name, value in where.items():
            if value is None:
                continue
            enc = self.encoder.columns[self.columns.index(name)]
            frame[name] = pd.Series([enc.exact_value(value)] * size, dtype=frame[name].dtype)
        return frame

    def _empty(self) -> pd.DataFrame:
        return self.encoder.decode(
            np.zeros((0, len(self.columns)), dtype=np.int64), np.random.default_rng(0)
        )

    def save(self, directory: str | Path) -> Path:
        config = {
            "generator": NAME,
            "schema": self.schema.model_dump(mode="json"),
            "encoder": self.encoder.model_dump(mode="json"),
            "model": vars(self.net.config),
            "privacy": self.privacy.model_dump(mode="json"),
            "summary": self.summary.model_dump(mode="json"),
            "training": self.training,
        }
        return save_artifact(Path(directory), config=config, state=self.net.state_dict())

    @classmethod
    def load(cls, directory: str | Path) -> TabularARGenerator:
        config, state = load_artifact(Path(directory))
        try:
            net = TabularAR(TabularARConfig(**config["model"]))
            net.load_state_dict(state)
            return cls(
                schema=TableSchema.model_validate(config["schema"]),
                encoder=TableEncoder.model_validate(config["encoder"]),
                net=net.eval(),
                privacy=PrivacyReport.model_validate(config["privacy"]),
                summary=FitSummary.model_validate(config["summary"]),
                training=config.get("training", {}),
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise ArtifactError(f"{directory} does not hold a valid {NAME} model: {e}") from e

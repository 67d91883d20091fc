"""What every table generator shares: sampling in chunks, where=, save and load.

A generator draws tokens (one per column) for rows whose ``fixed`` columns are given;
this base turns them into a DataFrame through the encoder, puts the exact where=
values back (a numeric token is a bin), and streams chunks with independent seeds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from training.calibration import Applied, Calibration, Tilt
from training.conditional_tilt import ConditionalTilt
from training.constraints import apply_copies, copied_columns, rows_kept
from training.encoding import TableEncoder
from training.errors import ConditionError, ConstraintError
from training.generators.saved import SavedGenerator
from training.schema import Scalar, TableSchema
from training.spec import FitSummary, PrivacyReport

__all__ = ["DEFAULT_CHUNK", "TableGenerator"]

# rows per sampling step: 4k-16k ran about twice as fast as 100k (cache-sized tensors)
DEFAULT_CHUNK = 16_384
# a chunk under declared constraints draws again for the rows that broke one, at most
# this many times, and gives up (ConstraintError) when under this share of rows keeps them
MAX_CONSTRAINT_DRAWS = 16
MIN_CONSTRAINT_KEEP = 0.01
# A resampling generator's redraw for the rows a chunk's first draw lost to a declared
# constraint: its pool is sized from the rows redrawn, at least this many. The first
# draw of a request smaller than a chunk gets a full chunk's pool instead (see
# _sample_chunk); every redraw getting one would draw a full chunk per redraw.
RESIDUAL_POOL = 4_096


class TableGenerator(SavedGenerator):
    """A trained table generator. Subclasses draw tokens and build their networks."""

    # how a calibration is applied: a generator that draws column by column and takes
    # ``tilt`` in ``draw`` says "conditionals"; any other resamples whole rows
    calibration_applied: Applied = "resampling"

    def __init__(
        self,
        *,
        schema: TableSchema,
        encoder: TableEncoder,
        net: torch.nn.Module,
        privacy: PrivacyReport,
        summary: FitSummary,
        training: dict[str, Any],
        calibration: Calibration | None = None,
    ) -> None:
        self.schema, self.encoder, self.net = schema, encoder, net
        self.privacy, self.summary, self.training = privacy, summary, training
        if calibration is not None:
            calibration.check(encoder.vocab_sizes)
        self.calibration = calibration

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
        """Stream ``n`` rows in chunks of at most ``chunk_size``: memory stays bounded.

        Rows keep the schema's declared constraints (``training.constraints``)."""
        where = self._where_through_copies(where or {})
        fixed = self._fixed_tokens(where)
        tilt = None
        if self.calibration is not None and self.calibration.applied == "conditionals":
            tilt = ConditionalTilt(self.calibration, fixed)  # once: every chunk fixes the same
        seeds = np.random.SeedSequence(seed).spawn(math.ceil(n / chunk_size))
        for i, chunk_seed in enumerate(seeds):
            size = min(chunk_size, n - i * chunk_size)
            yield self._kept_chunk(size, fixed, where, chunk_seed, tilt)

    def draw(
        self,
        size: int,
        fixed: dict[int, int],
        generator: torch.Generator,
        tilt: Tilt | None = None,
    ) -> torch.Tensor:
        """Tokens of ``size`` rows, column ``j`` equal to ``fixed[j]``.  (size, C)

        ``tilt`` is passed only to generators whose ``calibration_applied`` is
        "conditionals"."""
        raise NotImplementedError

    def draw_unconditional(
        self, n: int, *, seed: int | None = None, calibration: Calibration | Tilt | None = None
    ) -> np.ndarray:
        """``n`` rows of the network's own tokens, tilted in its conditionals by
        ``calibration`` when one is given (never resampled), or by a tilt being fitted
        (``FittingTilt``).  (n, C)"""
        seeds = np.random.SeedSequence(seed).spawn(math.ceil(n / DEFAULT_CHUNK))
        tilt: Tilt | None = (
            ConditionalTilt(calibration) if isinstance(calibration, Calibration) else calibration
        )
        parts = []
        for i, chunk_seed in enumerate(seeds):
            size = min(DEFAULT_CHUNK, n - i * DEFAULT_CHUNK)
            generator = torch.Generator().manual_seed(int(chunk_seed.generate_state(1)[0]))
            drawn = self.draw(size, {}, generator, tilt) if tilt else self.draw(size, {}, generator)
            parts.append(drawn.numpy())
        return np.concatenate(parts)

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

    def _where_through_copies(self, where: Mapping[str, Scalar | None]) -> dict[str, Any]:
        """``where`` with a value asked of a copied column (``equal``) asked of its source,
        which is the column drawn."""
        out = dict(where)
        for copy, source in copied_columns(self.schema.constraints).items():
            if copy not in out:
                continue
            if source in out and out[source] != out[copy]:
                raise ConditionError(
                    f"where= asks {copy}={out[copy]!r} and {source}={out[source]!r}, but "
                    f"the schema declares {copy!r} equal to {source!r}"
                )
            out[source] = out.pop(copy)
        return out

    def _kept_chunk(
        self,
        size: int,
        fixed: dict[int, int],
        where: Mapping[str, Scalar | None],
        seed: np.random.SeedSequence,
        tilt: Tilt | None,
    ) -> pd.DataFrame:
        """``size`` rows that keep the declared constraints: rows breaking one are drawn
        again (the model conditioned on the rules), equal columns copied."""
        constraints = self.schema.constraints
        if not constraints:
            return self._sample_chunk(size, fixed, where, seed, tilt, pool_floor=DEFAULT_CHUNK)
        parts: list[pd.DataFrame] = []
        kept = drawn = 0
        for draw_seed in seed.spawn(MAX_CONSTRAINT_DRAWS):
            share = kept / drawn if drawn else 1.0
            if drawn >= size and share < MIN_CONSTRAINT_KEEP:
                break
            want = math.ceil((size - kept) / max(share, MIN_CONSTRAINT_KEEP) * 1.1)
            n = min(max(want, 64), 8 * max(size, DEFAULT_CHUNK))
            floor = DEFAULT_CHUNK if not drawn else RESIDUAL_POOL
            frame = self._sample_chunk(n, fixed, where, draw_seed, tilt, pool_floor=floor)
            frame = apply_copies(constraints, frame)
            good = frame[rows_kept(constraints, frame)]
            parts.append(good)
            kept, drawn = kept + len(good), drawn + n
            if kept >= size:
                return pd.concat(parts, ignore_index=True).iloc[:size].reset_index(drop=True)
        rules = "; ".join(f"{c.kind} {list(c.columns)}" for c in constraints)
        raise ConstraintError(
            f"only {kept} of {drawn} drawn rows kept the declared constraints ({rules})"
            f"{' with where=' + str(dict(where)) if where else ''}; {size} were asked: "
            "a where= value may rule every row out, or the model rarely keeps the rule"
        )

    def _sample_chunk(
        self,
        size: int,
        fixed: dict[int, int],
        where: Mapping[str, Scalar | None],
        seed: np.random.SeedSequence,
        tilt: Tilt | None,
        *,
        pool_floor: int,
    ) -> pd.DataFrame:
        """``size`` rows; a resampling generator's drawn from at least ``pool_floor`` x
        its oversample model rows."""
        torch_seed, numpy_seed = seed.generate_state(2)
        generator = torch.Generator().manual_seed(int(torch_seed))
        rng = np.random.default_rng(int(numpy_seed))
        if tilt is not None:  # the calibration applied in the conditionals
            drawn = self.draw(size, fixed, generator, tilt).numpy()
        elif self.calibration is None:
            drawn = self.draw(size, fixed, generator).numpy()
        else:  # resample the model's rows by their tilt, a small request from a full chunk's
            # draw: from 4,096 rows, a 5,000-row request of fair (a plugin drawing its
            # columns independently, epsilon 1) kept so few distinct rows that its worst
            # column TV spread over 0.03-0.14 (0.03-0.04 at 20,000 rows); 0.014-0.056 now
            drawn_rows = math.ceil(max(size, pool_floor) * self.calibration.oversample)
            pool = self.draw(drawn_rows, fixed, generator).numpy()
            drawn = self.calibration.resample(pool, size, rng)
        frame = self.encoder.decode(drawn, rng)
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

    def modality_config(self) -> dict[str, Any]:
        return {
            "schema": self.schema.model_dump(mode="json"),
            "encoder": self.encoder.model_dump(mode="json"),
            "calibration": (self.calibration.model_dump(mode="json") if self.calibration else None),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], net: torch.nn.Module, **common: Any) -> Any:
        calibration = config.get("calibration")
        return cls(
            schema=TableSchema.model_validate(config["schema"]),
            encoder=TableEncoder.model_validate(config["encoder"]), net=net,
            calibration=Calibration.model_validate(calibration) if calibration else None,
            **common,
        )  # fmt: skip

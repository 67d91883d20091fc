"""Attack-based privacy risks from anonymeter (Giomi et al., PoPETs 2023).

Each attack is run against the training rows and, as a control, against holdout rows
the generator never saw; anonymeter's risk is the attack's success on training rows in
excess of its success on the control, with a confidence interval. The one module that
imports anonymeter.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from evaluation.errors import MetricError

__all__ = ["AttackRisk", "attack_risks"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttackRisk:
    name: str  # singling_out, linkability, inference:<column>
    risk: float
    ci: tuple[float, float]
    attack_rate: float
    baseline_rate: float
    control_rate: float | None
    n_attacks: int


def _risk(name: str, evaluator: object, n_attacks: int) -> AttackRisk:
    risk = evaluator.risk()  # type: ignore[attr-defined]
    results = evaluator.results()  # type: ignore[attr-defined]
    control = results.control_rate.value if results.control_rate is not None else None
    return AttackRisk(
        name=name,
        risk=float(risk.value),
        ci=(float(risk.ci[0]), float(risk.ci[1])),
        attack_rate=float(results.attack_rate.value),
        baseline_rate=float(results.baseline_rate.value),
        control_rate=None if control is None else float(control),
        n_attacks=n_attacks,
    )


def _cache_neighbour_search() -> None:
    """Keep anonymeter's compiled neighbour search on disk between job processes.

    Its numba kernel is jitted without ``cache=True``, so every evaluation process
    compiled it again: 5.5 s of a 39 s training job on the idle machine, a quarter of
    the evaluation. numba writes the cache beside the package (or in the user's cache
    directory when that is read-only) and falls back to compiling when neither is
    writable; the cache holds machine code only, never rows.
    """
    import anonymeter.evaluators  # noqa: F401 - first, or anonymeter's imports go in a circle
    from anonymeter.neighbors import mixed_types_kneighbors

    try:
        mixed_types_kneighbors._nearest_neighbors.enable_caching()
    except RuntimeError as e:  # numba found no writable cache directory
        logger.info("anonymeter's neighbour search compiles in each process: %s", e)


def attack_risks(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    kinds: Mapping[str, str],
    *,
    n_attacks: int = 300,
    secrets: list[str] | None = None,
    max_rows: int = 10_000,
    seed: int = 0,
) -> list[AttackRisk]:
    """Singling-out, linkability and attribute inference (one per secret column).

    ``n_attacks`` is capped by the control set's size (anonymeter attacks as many
    control rows as training rows). Tables are sampled to ``max_rows`` first: the
    attacks' neighbour searches are quadratic.
    """
    from anonymeter.evaluators import (
        InferenceEvaluator,
        LinkabilityEvaluator,
        SinglingOutEvaluator,
    )

    _cache_neighbour_search()
    columns = list(kinds)
    if len(columns) < 2:
        raise MetricError("attack risks need at least two columns")
    frames = [
        f[columns].sample(min(len(f), max_rows), random_state=seed).reset_index(drop=True)
        for f in (train, holdout, synthetic)
    ]
    ori, control, syn = frames
    n = max(1, min(n_attacks, len(control) - 1))
    half = len(columns) // 2
    out = []
    with warnings.catch_warnings():
        # anonymeter warns when an attack does no better than random: that is a result
        warnings.simplefilter("ignore")
        singling = SinglingOutEvaluator(ori, syn, control=control, n_attacks=n, seed=seed)
        out.append(_risk("singling_out", singling.evaluate(mode="univariate"), n))
        linking = LinkabilityEvaluator(
            ori, syn, control=control, n_attacks=n, n_neighbors=10,
            aux_cols=(columns[:half], columns[half:]),
        )  # fmt: skip
        out.append(_risk("linkability", linking.evaluate(n_jobs=1), n))
        for secret in secrets or columns[-1:]:
            if secret not in kinds:
                raise MetricError(f"secret column {secret!r} is not in the table")
            inference = InferenceEvaluator(
                ori, syn, control=control, n_attacks=n, secret=secret,
                aux_cols=[c for c in columns if c != secret],
                regression=kinds[secret] == "numerical",
            )  # fmt: skip
            out.append(_risk(f"inference:{secret}", inference.evaluate(n_jobs=1), n))
    return out

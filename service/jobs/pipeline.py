"""The ML steps of a job, as a worker runs them: train (optionally audited), evaluate.

Worker-side only: the API process never imports this module's ML imports (they load
inside the functions). This is the one place that uses training and evaluation
together, since the two packages are independent of each other.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    import training
    from evaluation.audit import AuditResult, Canaries
    from evaluation.evaluate import Evaluation
    from evaluation.spec import EvalSpec
    from training.images import ImageSet

__all__ = [
    "ImageCanaries",
    "TableCanaries",
    "evaluate_tables",
    "kinds_of",
    "load_model_record",
    "train_model",
]

logger = logging.getLogger(__name__)
AUDIT_FILE = "audit.json"
AUDIT_SAMPLES = 20_000  # synthetic rows the black-box attack looks through
AUDIT_IMAGES_PER_CLASS = 1_000  # and images per canary class


def kinds_of(schema: training.TableSchema) -> dict[str, str]:
    """The evaluation's column kinds (sdmetrics sdtypes) from a training schema."""
    sdtype = {"categorical": "categorical", "boolean": "boolean", "datetime": "datetime",
              "numerical": "numerical", "integer": "numerical"}  # fmt: skip
    return {c.name: sdtype[str(c.kind)] for c in schema.modelled}


class TableCanaries:
    """The audit's table planter: canaries from the released encoder, half planted.

    ``training.fit`` calls it once preprocessing has released the encoder; it keeps
    what it made so that the attack can score every canary afterwards.
    """

    def __init__(self, *, seed: int, count: int | None = None) -> None:
        self.seed, self.count = seed, count
        self._made: Canaries | None = None
        self._kinds: dict[str, str] = {}

    def __call__(self, encoder: Any, schema: Any, dp_rows: float) -> pd.DataFrame:
        import numpy as np

        from evaluation.audit import Canaries, planted_half
        from training.canaries import canary_count, table_canaries

        rng = np.random.default_rng(self.seed)
        rows = table_canaries(encoder, schema, self.count or canary_count(dp_rows), rng)
        self._made = Canaries(rows=rows, included=planted_half(len(rows), rng))
        self._kinds = kinds_of(schema)
        return self._made.inserted

    @property
    def made(self) -> Canaries:
        if self._made is None:
            raise RuntimeError("the trainer never planted the canaries")
        return self._made

    @property
    def included(self) -> np.ndarray:
        return self.made.included

    def attack(self, model: Any, *, scores_rows: bool, seed: int) -> tuple[np.ndarray, str]:
        """Each canary's membership score, and the attack's name."""
        from evaluation.audit import sample_match_scores

        if scores_rows:
            return model.log_likelihood(self.made.rows), "model log-likelihood"
        synthetic = model.sample(AUDIT_SAMPLES, seed=seed)  # no likelihood: black box
        return sample_match_scores(synthetic, self.made.rows, self._kinds), (
            "synthetic rows near each canary"
        )


class ImageCanaries:
    """The audit's image planter: noise images under classes the DP histogram kept."""

    def __init__(self, *, seed: int, count: int | None = None) -> None:
        self.seed, self.count = seed, count
        self._made: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __call__(
        self, classes: list[str], shape: tuple[int, int, int], dp_rows: float
    ) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        from evaluation.audit import planted_half
        from training.canaries import canary_count, image_canaries

        rng = np.random.default_rng(self.seed)
        m = self.count or canary_count(dp_rows)
        images, labels = image_canaries(shape, len(classes), m, rng)
        included = planted_half(m, rng)
        self._made = (images, labels, included)
        return images[included], labels[included]

    @property
    def made(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._made is None:
            raise RuntimeError("the trainer never planted the canaries")
        return self._made

    @property
    def included(self) -> np.ndarray:
        return self.made[2]

    def attack(self, model: Any, *, scores_rows: bool, seed: int) -> tuple[np.ndarray, str]:
        """Each canary's score (its labels index ``model.classes``, the kept ones)."""
        import numpy as np

        from evaluation.audit import nearest_image_scores
        from training.images import ImageSet

        images, labels, _ = self.made
        if scores_rows:
            scores = model.log_likelihood(ImageSet(images, labels, model.classes))
            return np.asarray(scores), "model log-likelihood (image canaries)"
        scores = np.zeros(len(images))  # no likelihood: the nearest image of its class
        for index, name in enumerate(model.classes):
            of_class = labels == index
            if of_class.any():
                drawn = model.sample(AUDIT_IMAGES_PER_CLASS, label=name, seed=seed)
                scores[of_class] = nearest_image_scores(drawn.images, images[of_class])
        return scores, "nearest synthetic image (image canaries)"


def train_model(
    data: pd.DataFrame | ImageSet,
    spec: training.TrainSpec,
    *,
    schema: training.TableSchema | None = None,
    public_classes: bool = False,
    audit: bool = False,
    canaries: int | None = None,
    progress: Any = None,
) -> tuple[Any, AuditResult | None]:
    """Fit a generator on a table or on images; with ``audit`` the run itself is audited.

    Audit: canaries go into this very training run (each with probability 1/2), so
    the bound speaks about the released model, not a stand-in. The trainer builds them
    from what preprocessing released (a table's encoder; the classes an image set's DP
    histogram kept) after it saw the real rows alone (``training.canaries``): their
    values and their number depend on public or DP-released metadata only, so the real
    rows' guarantee is unchanged. The attack is the generator's likelihood where it has
    one (``registry``), else a black-box search of its samples.
    """
    import training
    from evaluation.audit import epsilon_lower_bound

    generator = training.registry.entry(spec.generator)
    fit = functools.partial(
        training.fit, data, spec, schema=schema, public_classes=public_classes, progress=progress
    )
    if not audit:
        return fit(), None
    planter_class = ImageCanaries if generator.modality == "images" else TableCanaries
    planter = planter_class(seed=spec.seed + 7919, count=canaries)
    model = fit(plant=planter)
    scores, attack = planter.attack(
        model, scores_rows=generator.likelihood, seed=spec.seed + 104729
    )
    result = epsilon_lower_bound(scores, planter.included, delta=spec.dp.delta, attack=attack)
    logger.info("audit: epsilon lower bound %.3f", result.epsilon_lower_bound)
    return model, result


def save_audit(result: AuditResult, model_dir: str | Path) -> Path:
    path = Path(model_dir) / AUDIT_FILE
    path.write_text(json.dumps(result.as_dict(), indent=2))
    return path


def load_model_record(model_dir: str | Path) -> dict[str, Any]:
    """Privacy accounting, training record, schema and audit of a saved model.

    Reads the artifact's JSON only (no torch), so evaluation needs no ML runtime.
    """
    from training.artifacts import read_config

    directory = Path(model_dir)
    config = read_config(directory)
    audit_path = directory / AUDIT_FILE
    return {
        "privacy": config.get("privacy"),
        "training": config.get("training", {}),
        "schema": config.get("schema"),
        "audit": json.loads(audit_path.read_text()) if audit_path.exists() else None,
    }


def evaluate_tables(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    *,
    spec: EvalSpec | None = None,
    model_dir: str | Path | None = None,
    on_step: Callable[[str], None] | None = None,
) -> Evaluation:
    """evaluate() with the model's accounting, training record and audit when given."""
    import training
    from evaluation.audit import AuditResult
    from evaluation.evaluate import evaluate

    record = load_model_record(model_dir) if model_dir else {}
    kinds = None
    if record.get("schema"):
        kinds = kinds_of(training.TableSchema.model_validate(record["schema"]))
    audit = AuditResult(**record["audit"]) if record.get("audit") else None
    return evaluate(
        train, holdout, synthetic, kinds, spec, privacy=record.get("privacy"), audit=audit,
        training=record.get("training"), on_step=on_step,
    )  # fmt: skip

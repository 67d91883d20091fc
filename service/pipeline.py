"""The ML steps of a job, as a worker runs them: train (optionally audited), evaluate.

Worker-side only: the API process never imports this module's ML imports (they load
inside the functions). This is the one place that uses training and evaluation
together, since the two packages are independent of each other.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    import training
    from evaluation.audit import AuditResult, Canaries
    from evaluation.evaluate import Evaluation
    from evaluation.spec import EvalSpec
    from training.images import ImageSet

__all__ = [
    "TableCanaries",
    "evaluate_tables",
    "kinds_of",
    "load_model_record",
    "train_image_model",
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

    def __call__(self, encoder: Any, schema: Any, dp_rows: float) -> pd.DataFrame:
        import numpy as np

        from evaluation.audit import Canaries, planted_half
        from training.canaries import canary_count, table_canaries

        rng = np.random.default_rng(self.seed)
        rows = table_canaries(encoder, schema, self.count or canary_count(dp_rows), rng)
        self._made = Canaries(rows=rows, included=planted_half(len(rows), rng))
        return self._made.inserted

    @property
    def made(self) -> Canaries:
        if self._made is None:
            raise RuntimeError("the trainer never planted the canaries")
        return self._made


def train_model(
    frame: pd.DataFrame,
    spec: training.TrainSpec,
    *,
    schema: training.TableSchema | None = None,
    audit: bool = False,
    canaries: int | None = None,
    progress: Any = None,
) -> tuple[Any, AuditResult | None]:
    """Fit a generator; with ``audit`` the run itself is audited.

    Audit: canaries go into this very training run (each with probability 1/2), so
    the bound speaks about the released model, not a stand-in. The trainer builds them
    from its released encoder after preprocessing saw the real rows alone
    (``training.canaries``): their values and their number depend on public or
    DP-released metadata only, so the real rows' guarantee is unchanged.
    """

    import training
    from evaluation.audit import epsilon_lower_bound, sample_match_scores

    schema = schema or training.infer_schema(frame, min_rows=spec.min_rows)
    if not audit:
        return training.fit(frame, spec, schema=schema, progress=progress), None
    planter = TableCanaries(seed=spec.seed + 7919, count=canaries)
    model = training.fit(frame, spec, schema=schema, progress=progress, plant=planter)
    planted = planter.made
    kinds = kinds_of(schema)
    if hasattr(model, "log_likelihood"):
        scores, attack = model.log_likelihood(planted.rows), "model log-likelihood"
    else:  # a GAN has no likelihood: a black-box attack on its samples
        synthetic = model.sample(AUDIT_SAMPLES, seed=spec.seed + 104729)
        scores = sample_match_scores(synthetic, planted.rows, kinds)
        attack = "synthetic rows near each canary"
    result = epsilon_lower_bound(scores, planted.included, delta=spec.dp.delta, attack=attack)
    logger.info("audit: epsilon lower bound %.3f", result.epsilon_lower_bound)
    return model, result


def train_image_model(
    data: ImageSet,
    spec: training.TrainSpec,
    *,
    public_classes: bool = False,
    audit: bool = False,
    canaries: int | None = None,
    progress: Any = None,
) -> tuple[Any, AuditResult | None]:
    """Fit an image generator; with ``audit`` noise-image canaries go into this very run,
    under classes the DP label histogram kept (``training.canaries``): no real image."""
    import numpy as np

    import training
    from evaluation.audit import epsilon_lower_bound, nearest_image_scores, planted_half
    from training.canaries import canary_count, image_canaries
    from training.images import ImageSet

    if not audit:
        model = training.fit_images(data, spec, public_classes=public_classes, progress=progress)
        return model, None
    made: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def plant(
        classes: list[str], shape: tuple[int, int, int], dp_rows: float
    ) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(spec.seed + 7919)
        m = canaries or canary_count(dp_rows)
        images, labels = image_canaries(shape, len(classes), m, rng)
        included = planted_half(m, rng)
        made.append((images, labels, included))
        return images[included], labels[included]

    model = training.fit_images(
        data, spec, public_classes=public_classes, progress=progress, plant=plant
    )
    images, labels, included = made[0]  # labels index model.classes, the kept ones
    if hasattr(model, "log_likelihood"):
        attack = "model log-likelihood (image canaries)"
        scores = np.asarray(model.log_likelihood(ImageSet(images, labels, model.classes)))
    else:  # a GAN has no likelihood: the nearest of its images of the canary's class
        attack = "nearest synthetic image (image canaries)"
        scores = np.zeros(len(images))
        for index, name in enumerate(model.classes):
            of_class = labels == index
            if of_class.any():
                drawn = model.sample(AUDIT_IMAGES_PER_CLASS, label=name, seed=spec.seed + 104729)
                scores[of_class] = nearest_image_scores(drawn.images, images[of_class])
    result = epsilon_lower_bound(scores, included, delta=spec.dp.delta, attack=attack)
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
        training=record.get("training"),
    )  # fmt: skip

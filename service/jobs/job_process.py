"""``python -m service.jobs.job_process DIR``: one training job, in its own process.

Reads DIR/spec.json and DIR/data.*; writes DIR/model (artifact + audit.json),
DIR/report (HTML, PDF, JSON) and DIR/result.json; reports progress as JSON lines on
stdout (the files and messages: ``service.jobs.job_contract``). Torch, Opacus and sdmetrics
load here, never in the API process. About 80% of the rows train the generator (with
canaries planted when the job asks for an audit), about 20% are held out for the
evaluation: each row's side is a keyed hash of that row under a secret key
(``training.split``), so one row added to or removed from the upload changes the
training set by that row only.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

from service.jobs.job_contract import JobOptions, JobResult, JobSpec, JobWorkspace, Progress
from service.log_safety import configure_logging

logger = logging.getLogger(__name__)
MAX_EVALUATION_IMAGES = 5_000  # an autoregressive model samples pixel by pixel: bounded cost


# where a job stands as each evaluation step starts (sampling took it to 0.85)
EVALUATION_STEPS = {"fidelity": 0.87, "utility": 0.90, "memorization": 0.93, "risks": 0.96}


def evaluation_step(step: str) -> None:
    emit(EVALUATION_STEPS.get(step, 0.96), f"evaluating: {step}")


def emit(progress: float, message: str) -> None:
    sys.stdout.write(Progress(progress=min(max(progress, 0.0), 1.0), message=message).line())
    sys.stdout.flush()


def progress(epoch: int, total: int, loss: float, eps: float | None) -> None:
    """Training's share of the job's progress: 5% to 80%."""
    spent = f", epsilon spent {eps:.3f}" if eps is not None else ""
    emit(0.05 + 0.75 * epoch / total, f"epoch {epoch}/{total}{spent}")


def _train_spec(job: JobOptions) -> Any:
    """The job's spec, with this worker's DDP processes where the run can use them.

    ``SANITAS_TRAINING_DEVICES`` belongs to the worker (how many GPUs its node has),
    not to the job: the accounting does not depend on it.
    """
    import training
    from service.settings import Settings

    distributed = training.registry.entry(job.generator).distributed and job.epsilon
    return training.TrainSpec(
        generator=job.generator,
        epochs=job.epochs,
        dp=training.DPConfig.requested(
            epsilon=job.epsilon, delta=job.delta, calibration_share=job.calibration_share
        ),
        devices=Settings().training_devices if distributed else 1,
    )


def run(work: JobWorkspace) -> JobResult:
    import training
    from evaluation.spec import EvalSpec
    from service.jobs.pipeline import evaluate_tables
    from service.storage.tables import read_table
    from training.split import split_table

    spec = work.read_spec()
    job = spec.job
    if training.modality_of(spec.table_schema) == "images":
        return run_images(work, spec)
    frame = read_table(Path(spec.data))
    schema = training.TableSchema.model_validate(spec.table_schema)
    train, holdout = split_table(frame)
    emit(0.02, f"{len(train):,} rows train, {len(holdout):,} held out for the evaluation")
    model, model_dir, _ = _train_and_save(work, job, train, schema=schema)
    privacy = model.privacy.model_dump(mode="json")
    # the declared schema and what each column's samples can hold (DP-released or public)
    schema_json = {**model.schema.model_dump(mode="json"),
                   "released_domains": model.encoder.domains()}  # fmt: skip
    targets = [job.target_column] if job.target_column else []
    try:
        synthetic = model.sample(len(train), seed=0)
        result = evaluate_tables(
            train, holdout, synthetic, spec=EvalSpec(targets=targets), model_dir=model_dir,
            on_step=evaluation_step,
        )  # fmt: skip
    except Exception as e:  # noqa: BLE001 - any metric library crash: keep the model, say why
        return _unevaluated(work, job.generator, e, privacy=privacy, schema=schema_json,
                            subject=spec.subject)  # fmt: skip
    return _report(work, job.generator, result, privacy=privacy, schema=schema_json,
                   subject=spec.subject)  # fmt: skip


def run_images(work: JobWorkspace, spec: JobSpec) -> JobResult:
    """The image path: the keyed 80/20 split, training under DP, image evaluation, report."""
    import numpy as np

    from evaluation.images import LabeledImages, evaluate_images, image_report_data
    from evaluation.result import Evaluation
    from training.images import ImageSet, load_npz
    from training.split import split_images

    job = spec.job
    data = load_npz(Path(spec.data))
    held = split_images(data.images, data.labels)
    train, holdout = (ImageSet(data.images[i], data.labels[i], data.classes)
                      for i in (~held, held))  # fmt: skip
    emit(0.02, f"{len(train):,} images train, {len(holdout):,} held out for the evaluation")
    public = bool(spec.table_schema.get("public_classes", False))
    model, _, audit = _train_and_save(work, job, train, public_classes=public)
    privacy = model.privacy.model_dump(mode="json")
    schema = {**spec.table_schema, "classes": model.classes}  # the classes DP selection kept

    def labeled(d: ImageSet) -> LabeledImages:
        return LabeledImages(d.images, np.asarray(d.classes, dtype=object)[d.labels])

    try:
        synthetic = model.sample(min(len(train), MAX_EVALUATION_IMAGES), seed=0)
        result = evaluate_images(
            labeled(train),
            labeled(holdout),
            labeled(synthetic),
            data.classes,
            audit=audit,
            claimed_epsilon=model.privacy.epsilon if model.privacy.dp else None,
            on_step=evaluation_step,
        )
        report = image_report_data(
            result,
            train=labeled(train),
            synthetic=labeled(synthetic),
            classes=data.classes,
            privacy=privacy,
            show_real_images=job.report_real_images,
        )
    except Exception as e:  # noqa: BLE001 - any metric library crash: keep the model, say why
        return _unevaluated(work, job.generator, e, privacy=privacy, schema=schema,
                            subject=spec.subject)  # fmt: skip
    return _report(work, job.generator, Evaluation(report), privacy=privacy, schema=schema,
                   subject=spec.subject)  # fmt: skip


def _train_and_save(
    work: JobWorkspace, job: JobOptions, train: Any, **options: Any
) -> tuple[Any, Path, Any]:
    """Train (audited when the job asks), save the model and its audit into the workspace."""
    from service.jobs.pipeline import save_audit, train_model

    model, audit = train_model(
        train, _train_spec(job), audit=job.audit, progress=progress, **options
    )
    model_dir = model.save(work.model)
    if audit is not None:
        save_audit(audit, model_dir)
        emit(0.82, f"audit: epsilon lower bound {audit.epsilon_lower_bound:.2f}")
    emit(0.85, "sampling rows for the evaluation")
    return model, model_dir, audit


def _report(
    work: JobWorkspace,
    generator: str,
    evaluation: Any,
    *,
    privacy: dict[str, Any],
    schema: dict[str, Any],
    subject: dict[str, Any],
) -> JobResult:
    """Write the report (HTML, PDF, JSON, checked against its modality's schema) and the
    job's result; the gates travel with it."""
    from evaluation.report import write_report

    # the ids a filed report is tied back by (the release, made later, names the model)
    write_report({**evaluation.data, "subject": subject}, work.report)
    failed = evaluation.failed
    emit(0.99, "report written" + (f"; failed gates: {failed}" if failed else "; all gates pass"))
    return JobResult(
        generator=generator, privacy=privacy, schema=schema, gates=evaluation.gates,
        passed=evaluation.passed,
    )  # fmt: skip


def _unevaluated(
    work: JobWorkspace,
    generator: str,
    error: Exception,
    *,
    privacy: dict[str, Any],
    schema: dict[str, Any],
    subject: dict[str, Any],
) -> JobResult:
    """The trained model's result when its evaluation could not run: kept (its epsilon
    is spent), with a failed ``evaluation`` gate that holds its release back, and a
    report that says why."""
    import html
    import json

    logger.exception("the evaluation could not run")
    reason = f"the evaluation could not run: {type(error).__name__}: {error}"[:2000]
    gate = {"name": "evaluation", "status": "fail", "reason": reason}
    work.report.mkdir(parents=True, exist_ok=True)
    body = {"evaluation": "failed", "reason": reason, "generator": generator,
            "subject": subject,
            "privacy": privacy, "gates": [gate]}  # fmt: skip
    (work.report / "report.json").write_text(json.dumps(body, indent=2, default=str))
    (work.report / "report.html").write_text(
        "<!doctype html><meta charset=utf-8><title>Evaluation failed</title>"
        f"<h1>Privacy and quality report: the evaluation failed</h1><p>{html.escape(reason)}"
        f"<p>The model was trained at epsilon {html.escape(str(privacy.get('epsilon')))}; "
        "its release is held back by the failed evaluation gate."
    )
    emit(0.99, f"model kept; {reason}")
    return JobResult(generator=generator, privacy=privacy, schema=schema, gates=[gate],
                     passed=False)  # fmt: skip


def main() -> None:
    configure_logging(logging.WARNING, sys.stderr)
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    work = JobWorkspace(Path(sys.argv[1]))
    work.write_result(run(work))


if __name__ == "__main__":
    main()

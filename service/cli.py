"""The ``sanitas`` command line.

ML commands import ``training`` lazily, so ``sanitas --help`` and the service commands
never load torch.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from service.cli_audit import audit_app
from service.cli_console import console_app
from service.cli_schedules import schedules_app
from service.cli_support import database_sessions, key_id_of
from service.log_safety import configure_logging
from service.storage.tables import (
    UnsupportedFormatError,
    parse_scalar,
    read_table,
    write_table,
)
from training import registry

app = typer.Typer(help="Sanitas: differentially private synthetic data.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)
GENERATOR_HELP = ", ".join(f"{e.name} ({e.modality})" for e in registry.entries())
DDP_HELP = ", ".join(e.name for e in registry.entries() if e.distributed)


def _parse_where(items: list[str]) -> dict[str, object]:
    """``column:value``, as the API's where= takes it (``column=value`` is read too)."""
    where: dict[str, object] = {}
    for item in items:
        cut = min((i for i in (item.find(":"), item.find("=")) if i > 0), default=-1)
        if cut < 0:
            raise typer.BadParameter(f"--where {item!r} must look like column:value")
        where[item[:cut]] = parse_scalar(item[cut + 1 :])
    return where


DataArgument = Annotated[
    Path, typer.Argument(help="CSV or Parquet table, or NPZ images", exists=True, dir_okay=False)
]
GeneratorOption = Annotated[
    str | None, typer.Option(help=f"one of: {GENERATOR_HELP} (default: the data's modality's)")
]
ShareOption = Annotated[
    float | None,
    typer.Option(
        help="tables: what measured marginals cost alone, as a share of epsilon (0: off; "
        "unset: by rule, about 0.8-0.89 at epsilon 1, DP-SGD keeping 0.15 of the budget)"
    ),
]
DevicesOption = Annotated[
    int,
    typer.Option(
        help=f"DDP processes for DP-SGD ({DDP_HELP}): one per GPU, or CPU processes; the "
        "accounting is that of one process"
    ),
]
CanariesOption = Annotated[
    int | None,
    typer.Option(
        help="canaries for --audit (default: ~2% of the DP row count, a power of two, 128-1024)"
    ),
]


@app.command()
def train(
    data: DataArgument,
    out: Annotated[Path, typer.Option("--out", help="artifact directory to write")],
    generator: GeneratorOption = None,
    epsilon: Annotated[float | None, typer.Option(help="target epsilon; omit with --no-dp")] = 1.0,
    delta: Annotated[float, typer.Option(help="target delta")] = 1e-5,
    calibration_share: ShareOption = None,
    no_dp: Annotated[bool, typer.Option("--no-dp", help="without DP (comparison only)")] = False,
    epochs: Annotated[int | None, typer.Option(help="epochs (default: by data size)")] = None,
    schema_file: Annotated[Path | None, typer.Option("--schema", help="schema JSON to use")] = None,
    seed: Annotated[int, typer.Option(help="seed for initialisation and masks")] = 0,
    devices: DevicesOption = 1,
    audit: Annotated[bool, typer.Option("--audit", help="plant canaries, bound epsilon")] = False,
    canaries: CanariesOption = None,
    public_classes: Annotated[
        bool, typer.Option("--public-classes", help="images: the class list is public knowledge")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Fit a generator on DATA and save it to OUT (with --audit, also OUT/audit.json).

    DATA ending in .npz holds labeled images (``images`` uint8 N x H x W [x C],
    ``labels``, optional ``classes``) for an image generator.
    """
    import training
    from service.jobs.pipeline import save_audit

    images = data.suffix.lower() == ".npz"
    generator = generator or registry.default_generator("images" if images else "table")
    try:
        dp = training.DPConfig.requested(
            epsilon=None if no_dp else epsilon, delta=delta, calibration_share=calibration_share
        )
        spec = training.TrainSpec(
            generator=generator, epochs=epochs, seed=seed, devices=devices, dp=dp
        )
        schema = training.TableSchema.from_json(schema_file.read_text()) if schema_file else None
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    model, audited = _fit_with_progress(
        data, spec, schema=schema, public_classes=public_classes, audit=audit,
        canaries=canaries, quiet=as_json,
    )  # fmt: skip
    model.save(out)
    summary = model.summary.model_dump(mode="json") | {"artifact": str(out)}
    if audited is not None:
        save_audit(audited, out)
        summary["epsilon_lower_bound"] = audited.epsilon_lower_bound
    if as_json:
        typer.echo(json.dumps(summary))
        return
    table = Table(title=f"trained {generator}", show_header=False)
    for key, value in summary.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    Console().print(table)
    if summary.get("epsilon_calibration") is not None:
        Console().print("The epsilon parts each cost that much alone; composed, they make "
                        "epsilon (less than their sum).")  # fmt: skip


def _fit_with_progress(data: Path, spec: Any, *, quiet: bool, **options: Any) -> tuple[Any, Any]:
    """Train with a progress bar (none with ``quiet``); a training error exits with 2."""
    from rich.progress import BarColumn, Progress, TextColumn

    from evaluation.errors import EvaluationError
    from service.jobs.pipeline import train_model
    from training.errors import TrainingError
    from training.images import load_npz

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                  console=console, disable=quiet, transient=True) as bar:  # fmt: skip
        task = bar.add_task("training", total=None, info="")

        def progress(epoch: int, total: int, loss: float, eps: float | None) -> None:
            spent = f" epsilon={eps:.3f}" if eps is not None else ""
            bar.update(task, completed=epoch, total=total, info=f"loss={loss:.3f}{spent}")

        try:
            rows = load_npz(data) if data.suffix.lower() == ".npz" else read_table(data)
            return train_model(rows, spec, progress=progress, **options)  # type: ignore[no-any-return]
        except (TrainingError, EvaluationError) as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from e


@app.command()
def sample(
    model_dir: Annotated[
        Path, typer.Argument(help="artifact directory", exists=True, file_okay=False)
    ],
    n: Annotated[int, typer.Option("-n", help="rows (or images) to sample", min=1)],
    out: Annotated[
        Path, typer.Option("--out", help="CSV, Parquet or JSONL file; images: .npz, .zip or .png")
    ],
    seed: Annotated[int | None, typer.Option(help="seed for reproducible samples")] = None,
    where: Annotated[
        list[str] | None, typer.Option(help="fix a column: col:value (repeatable)")
    ] = None,
    label: Annotated[str | None, typer.Option(help="images: the class to draw")] = None,
) -> None:
    """Sample N synthetic rows (streamed in chunks) or images from a trained generator."""
    import training
    from training.errors import TrainingError

    try:
        model = training.load(model_dir)
        if training.modality_of(model) == "images":
            from training.images import write_images

            write_images(out, model.sample(n, label=label, seed=seed))
            typer.echo(json.dumps({"images": n, "out": str(out)}))
            return
        if label is not None:
            raise typer.BadParameter("--label is for image generators; tables use --where")
        chunks = model.sample_chunks(n, seed=seed, where=_parse_where(where or []))
        rows = write_table(out, chunks)
    except (TrainingError, UnsupportedFormatError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    typer.echo(json.dumps({"rows": rows, "out": str(out)}))


@app.command()
def schema(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet table", exists=True, dir_okay=False)],
) -> None:
    """Print the inferred schema (column kinds only) as JSON, for the owner to edit."""
    import training
    from training.schema import INFERENCE_NOTICE

    typer.echo(training.infer_schema(read_table(data)).to_json())
    typer.echo(f"note: {INFERENCE_NOTICE}", err=True)


@app.command()
def evaluate(
    train_data: Annotated[
        Path, typer.Option("--train", help="real training table", exists=True, dir_okay=False)
    ],
    holdout: Annotated[
        Path, typer.Option(help="real rows the model never saw", exists=True, dir_okay=False)
    ],
    synthetic: Annotated[Path, typer.Option(help="synthetic table", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="directory for report.html/.pdf/.json")],
    model: Annotated[
        Path | None,
        typer.Option(
            help="model artifact: accounting, audit, schema", exists=True, file_okay=False
        ),
    ] = None,
    target: Annotated[
        list[str] | None, typer.Option(help="column to predict for TSTR (repeatable)")
    ] = None,
    pdf: Annotated[bool, typer.Option(help="also write report.pdf")] = True,
    strict: Annotated[bool, typer.Option(help="exit 1 when a release gate fails")] = False,
) -> None:
    """Evaluate SYNTHETIC against TRAIN and HOLDOUT; write the report to OUT."""
    from evaluation.errors import EvaluationError
    from evaluation.report import write_report
    from evaluation.spec import EvalSpec
    from service.jobs.pipeline import evaluate_tables
    from training.errors import TrainingError

    frames = [read_table(p) for p in (train_data, holdout, synthetic)]
    try:
        spec = EvalSpec(targets=target or [])
        result = evaluate_tables(*frames, spec=spec, model_dir=model)
        paths = write_report(result.data, out, pdf=pdf)
    except (EvaluationError, TrainingError, ValueError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    _print_gates(result.gates)
    typer.echo(json.dumps({"passed": result.passed, **{k: str(v) for k, v in paths.items()}}))
    if strict and not result.passed:
        raise typer.Exit(1)


@app.command()
def report(
    report_json: Annotated[
        Path, typer.Argument(help="a report.json to re-render", exists=True, dir_okay=False)
    ],
    out: Annotated[Path, typer.Option("--out", help="directory for report.html/.pdf/.json")],
    pdf: Annotated[bool, typer.Option(help="also write report.pdf")] = True,
) -> None:
    """Re-render a report (HTML, PDF) from its JSON, without the data."""
    from evaluation.errors import EvaluationError
    from evaluation.report import load_report, write_report

    try:
        paths = write_report(load_report(report_json), out, pdf=pdf)
    except EvaluationError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    typer.echo(json.dumps({k: str(v) for k, v in paths.items()}))


db_app = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
encryption_app = typer.Typer(help="The key datasets are encrypted under.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(encryption_app, name="encryption")
app.add_typer(schedules_app, name="schedules")
app.add_typer(audit_app, name="audit")
app.add_typer(console_app, name="console")


@encryption_app.command("new-key")
def encryption_new_key() -> None:
    """Print a fresh key for SANITAS_ENCRYPTION_KEY (32 random bytes, base64)."""
    import base64
    import secrets

    typer.echo(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())


@encryption_app.command("rotate")
def encryption_rotate() -> None:
    """Re-encrypt every dataset under SANITAS_ENCRYPTION_KEY that is still under one of
    SANITAS_PREVIOUS_ENCRYPTION_KEYS. Safe to interrupt and run again; once it reports
    none left, drop the previous keys from every node (docs/operations.md)."""
    from service.settings import Settings
    from service.storage.encrypted import StorageError, decode_key
    from service.storage.key_rotation import rotate
    from service.storage.object_store import from_settings

    settings = Settings()
    if not settings.encryption_key:
        raise typer.BadParameter("set SANITAS_ENCRYPTION_KEY to the new key")
    if not settings.previous_encryption_keys:
        raise typer.BadParameter("set SANITAS_PREVIOUS_ENCRYPTION_KEYS to the old key(s)")
    try:
        current = decode_key(settings.encryption_key)
        previous = [decode_key(k) for k in settings.previous_encryption_keys]
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    try:
        result = rotate(_sessions(), from_settings(settings), current=current,
                        previous=previous, scratch=settings.data_dir / "rotation")  # fmt: skip
    except StorageError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    typer.echo(json.dumps({"rotated": result.rotated, "already_current": result.current}))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply migrations to SANITAS_DATABASE_URL (SQLite upgrades itself at start-up)."""
    from service.migrate import upgrade
    from service.settings import Settings

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.sqlalchemy_url)
    typer.echo(json.dumps({"upgraded": settings.sqlalchemy_url.split("@")[-1]}))


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="owner, consumer, auditor or admin")],
    project: Annotated[str | None, typer.Option(help="project the key acts in")] = None,
    label: Annotated[str | None, typer.Option(help="who or what holds it")] = None,
) -> None:
    """Print a new API key (shown once; only its hash is stored)."""
    from service.audit_chain import make_sessionmaker
    from service.db import Role, make_engine
    from service.http.auth import create_key
    from service.migrate import upgrade
    from service.settings import Settings

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.is_sqlite:
        upgrade(settings.sqlalchemy_url)
    try:
        chosen = Role(role)
    except ValueError as e:
        raise typer.BadParameter(f"role must be one of {[r.value for r in Role]}") from e
    sessions = make_sessionmaker(make_engine(settings.sqlalchemy_url))
    with sessions() as session:
        try:
            token, _ = create_key(session, chosen, project, label=label)
        except ValueError as e:
            raise typer.BadParameter(str(e)) from e
    typer.echo(token)


_sessions = database_sessions


@keys_app.command("list")
def keys_list() -> None:
    """Key ids, roles, projects, labels, creation and revocation times (never the
    secrets: only hashes exist)."""
    from sqlalchemy import select

    from service.db import ApiKey

    with _sessions()() as session:
        for key in session.scalars(select(ApiKey).order_by(ApiKey.created_at)):
            revoked = key.revoked_at.isoformat() if key.revoked_at else None
            typer.echo(json.dumps({
                "id": key.id, "role": key.role, "project": key.project_id, "label": key.label,
                "created_at": key.created_at.isoformat(), "revoked_at": revoked,
            }))  # fmt: skip


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="key id (see `sanitas keys list`) or the key")],
) -> None:
    """Revoke a key; the next request made with it is refused (401) and audited."""
    from service.http.auth import revoke_key

    with _sessions()() as session:
        key_id = key_id_of(session, key)
        if not revoke_key(session, key_id):
            console.print("[red]error:[/red] no such key")
            raise typer.Exit(2)
    typer.echo(json.dumps({"revoked": key_id}))


# uvicorn's bounds on what a client may hold before a route runs: request-line and
# headers at most 16 KiB (h11), at most 256 connections at once (more get 503), idle
# keep-alive connections closed after 5 s, a request head due within
# SANITAS_HEADER_READ_SECONDS (service.http.protocol). Bodies: service.guards.
SERVER_LIMITS: dict[str, Any] = {
    "h11_max_incomplete_event_size": 16 * 1024,
    "limit_concurrency": 256,
    "timeout_keep_alive": 5,
}


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind")] = 8000,
) -> None:
    """Run the API (embedded default: SQLite, local files, an in-process worker)."""
    import uvicorn

    from service.app import create_app
    from service.http.protocol import protocol_with_deadline
    from service.settings import Settings

    settings = Settings()
    key = "SANITAS_ENCRYPTION_KEY" if settings.encryption_key else str(settings.key_path)
    database = settings.sqlalchemy_url.split("@")[-1]  # never a password
    typer.echo(f"sanitas: data {settings.data_dir.resolve()} | database {database} | "
               f"key {key}", err=True)  # fmt: skip
    http = protocol_with_deadline(settings.header_read_seconds)
    uvicorn.run(
        create_app(settings), host=host, port=port, log_level="info", server_header=False,
        http=http, **SERVER_LIMITS,
    )  # fmt: skip


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="jobs at a time")] = 1,
) -> None:
    """Run a Celery worker for SANITAS_BROKER_URL (scale-out)."""
    from service.audit_chain import make_sessionmaker
    from service.db import make_engine
    from service.jobs.celery_worker import make_worker
    from service.jobs.runner import JobContext
    from service.settings import Settings
    from service.storage.encrypted import load_key
    from service.storage.object_store import from_settings

    settings = Settings()
    if not settings.broker_url:
        raise typer.BadParameter("set SANITAS_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    ctx = JobContext(settings, make_sessionmaker(make_engine(settings.sqlalchemy_url)),
                     load_key(settings.encryption_key, settings.key_path),
                     from_settings(settings))  # fmt: skip
    celery = make_worker(settings.broker_url, ctx)
    celery.worker_main(["worker", "--loglevel=INFO", f"--concurrency={concurrency}",
                        "--pool=threads", "--without-gossip", "--without-mingle"])  # fmt: skip


@app.command()
def scheduler(
    every: Annotated[float, typer.Option(help="seconds between checks")] = 30.0,
) -> None:
    """Enqueue scheduled retraining runs (safe to run more than one)."""
    import threading

    from service.audit_chain import make_sessionmaker
    from service.db import make_engine
    from service.jobs.runner import CeleryRunner, JobContext, LocalRunner, Runner
    from service.jobs.scheduler import run_loop
    from service.settings import Settings
    from service.storage.encrypted import load_key
    from service.storage.object_store import from_settings

    settings = Settings()
    ctx = JobContext(settings, make_sessionmaker(make_engine(settings.sqlalchemy_url)),
                     load_key(settings.encryption_key, settings.key_path),
                     from_settings(settings))  # fmt: skip
    runner: Runner = (CeleryRunner(settings.broker_url) if settings.broker_url
                      else LocalRunner(ctx, settings.worker_threads))  # fmt: skip
    runner.start()
    run_loop(ctx, runner, threading.Event(), every=every)


def _print_gates(gates: list[dict[str, str]]) -> None:
    colour = {"pass": "green", "fail": "red", "not_run": "grey50"}
    table = Table(title="release gates")
    for column in ("gate", "status", "reason"):
        table.add_column(column)
    for g in gates:
        table.add_row(g["name"], f"[{colour[g['status']]}]{g['status']}[/]", g["reason"])
    console.print(table)


def main() -> None:
    configure_logging(logging.WARNING)
    # deprecation notices of the frameworks are for their callers' developers, not users
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    app()


if __name__ == "__main__":
    main()

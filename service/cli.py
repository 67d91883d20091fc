"""The ``sanitas`` command line.

ML commands import ``training`` lazily, so ``sanitas --help`` and the service commands
never load torch.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from service.tables import read_table, write_table

app = typer.Typer(help="Sanitas: differentially private synthetic data.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)


def _parse_where(items: list[str]) -> dict[str, object]:
    where: dict[str, object] = {}
    for item in items:
        if "=" not in item:
            raise typer.BadParameter(f"--where {item!r} must look like column=value")
        name, raw = item.split("=", 1)
        where[name] = _scalar(raw)
    return where


def _scalar(raw: str) -> object:
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            continue
    return {"true": True, "false": False}.get(raw.lower(), raw)


@app.command()
def train(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet table", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="artifact directory to write")],
    generator: Annotated[str, typer.Option(help="generator name")] = "tabular-ar",
    epsilon: Annotated[float | None, typer.Option(help="target epsilon; omit with --no-dp")] = 1.0,
    delta: Annotated[float, typer.Option(help="target delta")] = 1e-5,
    no_dp: Annotated[
        bool, typer.Option("--no-dp", help="train without DP (comparison only)")
    ] = False,
    epochs: Annotated[
        int | None, typer.Option(help="epochs (default: chosen from the data size)")
    ] = None,
    schema_file: Annotated[Path | None, typer.Option("--schema", help="schema JSON to use")] = None,
    seed: Annotated[int, typer.Option(help="seed for initialisation and masks")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Fit a generator on DATA and save it to OUT."""
    from rich.progress import BarColumn, Progress, TextColumn

    import training
    from training.errors import TrainingError

    frame = read_table(data)
    try:
        spec = training.TrainSpec(
            generator=generator,
            dp=training.DPConfig(epsilon=None if no_dp else epsilon, delta=delta),
            epochs=epochs,
            seed=seed,
        )
        schema = training.TableSchema.from_json(schema_file.read_text()) if schema_file else None
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                  console=console, disable=as_json, transient=True) as bar:  # fmt: skip
        task = bar.add_task("training", total=None, info="")

        def progress(epoch: int, total: int, loss: float, eps: float | None) -> None:
            spent = f" epsilon={eps:.3f}" if eps is not None else ""
            bar.update(task, completed=epoch, total=total, info=f"loss={loss:.3f}{spent}")

        try:
            model = training.fit(frame, spec, schema=schema, progress=progress)
        except TrainingError as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from e
    model.save(out)
    summary = model.summary.model_copy(update={"artifact": str(out)})
    if as_json:
        typer.echo(summary.model_dump_json())
        return
    table = Table(title=f"trained {generator}", show_header=False)
    for key, value in summary.model_dump().items():
        table.add_row(key, str(value))
    Console().print(table)


@app.command()
def sample(
    model_dir: Annotated[
        Path, typer.Argument(help="artifact directory", exists=True, file_okay=False)
    ],
    n: Annotated[int, typer.Option("-n", help="rows to sample", min=1)],
    out: Annotated[Path, typer.Option("--out", help="CSV or Parquet file to write")],
    seed: Annotated[int | None, typer.Option(help="seed for reproducible samples")] = None,
    where: Annotated[
        list[str] | None, typer.Option(help="fix a column: col=value (repeatable)")
    ] = None,
) -> None:
    """Sample N synthetic rows from a trained generator (streamed in chunks)."""
    import training
    from training.errors import TrainingError

    try:
        model = training.load(model_dir)
        chunks = model.sample_chunks(n, seed=seed, where=_parse_where(where or []))
        rows = write_table(out, chunks)
    except TrainingError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    typer.echo(json.dumps({"rows": rows, "out": str(out)}))


@app.command()
def schema(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet table", exists=True, dir_okay=False)],
) -> None:
    """Print the inferred schema (column kinds only) as JSON, for the owner to edit."""
    import training

    typer.echo(training.infer_schema(read_table(data)).to_json())


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    app()


if __name__ == "__main__":
    main()

"""``sanitas schedules``: scheduled retraining managed over the API (the server's rules
apply: budget checks, audit), through the Python client.

The server and key come from ``--url``/``--key`` or SANITAS_URL/SANITAS_API_KEY.
Each command prints the schedule as JSON (``list``: one per line).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from service.client import ApiError, Client

__all__ = ["schedules_app"]

schedules_app = typer.Typer(help="Scheduled retraining, over the API.", no_args_is_help=True)

Url = Annotated[str | None, typer.Option(envvar="SANITAS_URL", help="the server")]
Key = Annotated[str | None, typer.Option(envvar="SANITAS_API_KEY", help="an owner's API key")]
Id = Annotated[str, typer.Argument(help="the schedule's id")]


def _run(url: str | None, key: str | None, call: Any) -> None:
    """Call the API; print the result, or the problem and exit 2."""
    try:
        with Client(url, key) as client:
            result = call(client)
    except ApiError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    except ValueError as e:  # no key
        raise typer.BadParameter(str(e)) from e
    for item in result if isinstance(result, list) else [result]:
        typer.echo(json.dumps(item.model_dump(mode="json", by_alias=True)))


@schedules_app.command("list")
def list_schedules(
    url: Url = None,
    key: Key = None,
    state: Annotated[str | None, typer.Option(help="active, paused or deleted")] = None,
    dataset: Annotated[str | None, typer.Option(help="only this dataset's")] = None,
) -> None:
    """The project's schedules (deleted ones only with --state deleted)."""
    _run(url, key, lambda c: list(c.schedules(state=state, dataset_id=dataset)))


@schedules_app.command("create")
def create(
    dataset: Annotated[str, typer.Argument(help="the dataset's id")],
    cron: Annotated[str, typer.Argument(help="five fields in UTC, or @daily, @weekly...")],
    epsilon: Annotated[float, typer.Option(help="each run's epsilon")],
    url: Url = None,
    key: Key = None,
    auto_release: Annotated[bool, typer.Option(help="release runs whose gates pass")] = False,
    job: Annotated[
        str | None, typer.Option(help="more of the job as JSON, e.g. '{\"epochs\": 5}'")
    ] = None,
) -> None:
    """Retrain DATASET at each fire time of CRON; refused when one run cannot fit."""
    options = json.loads(job) if job else {}
    _run(url, key, lambda c: c.create_schedule(
        dataset, cron, epsilon=epsilon, auto_release=auto_release, **options
    ))  # fmt: skip


@schedules_app.command("pause")
def pause(schedule: Id, url: Url = None, key: Key = None) -> None:
    """Stop firing until resumed."""
    _run(url, key, lambda c: c.pause(schedule))


@schedules_app.command("resume")
def resume(schedule: Id, url: Url = None, key: Key = None) -> None:
    """Fire again from now on (what fell due while paused is not made up)."""
    _run(url, key, lambda c: c.resume(schedule))


@schedules_app.command("update")
def update(
    schedule: Id,
    url: Url = None,
    key: Key = None,
    cron: Annotated[str | None, typer.Option(help="a new cron expression")] = None,
    epsilon: Annotated[float | None, typer.Option(help="a new epsilon per run")] = None,
    auto_release: Annotated[bool | None, typer.Option(help="release passing runs")] = None,
) -> None:
    """Re-time a schedule or change its runs' epsilon."""

    def call(c: Client) -> Any:
        changes: dict[str, Any] = {"cron": cron, "auto_release": auto_release}
        if epsilon is not None:
            changes["job"] = {**c.schedule(schedule).job, "epsilon": epsilon}
        return c.update_schedule(schedule, **{k: v for k, v in changes.items() if v is not None})

    _run(url, key, call)


@schedules_app.command("delete")
def delete(schedule: Id, url: Url = None, key: Key = None) -> None:
    """Stop a schedule for good (kept on the record with its runs)."""
    _run(url, key, lambda c: c.delete_schedule(schedule))

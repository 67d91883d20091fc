"""``sanitas audit``: export the audit log over the API and check its hash chains.

``verify --file`` needs nothing but the export (an auditor's copy, checked anywhere);
``verify`` alone reads the server's database directly, like ``sanitas keys``, and also
checks each chain reaches its recorded head (deleting the last entries leaves links
intact). Anchors (``CHAIN:SEQ:HASH``, from ``heads`` at an earlier time) prove that
nothing up to them was rewritten since, which re-hashing a whole chain would otherwise
hide.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from service.client import ApiError, Client

__all__ = ["audit_app"]

audit_app = typer.Typer(help="The audit log: export, heads, verify.", no_args_is_help=True)

Url = Annotated[str | None, typer.Option(envvar="SANITAS_URL", help="the server")]
Key = Annotated[str | None, typer.Option(envvar="SANITAS_API_KEY", help="an auditor's key")]


def _client_call(url: str | None, key: str | None, call: Any) -> Any:
    try:
        with Client(url, key) as client:
            return call(client)
    except ApiError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    except ValueError as e:  # no key
        raise typer.BadParameter(str(e)) from e


@audit_app.command("export")
def export(
    out: Annotated[Path, typer.Option(help="file to write (.jsonl or .csv)")],
    url: Url = None,
    key: Key = None,
    since: Annotated[str | None, typer.Option(help="from this time (ISO 8601)")] = None,
    until: Annotated[str | None, typer.Option(help="before this time (ISO 8601)")] = None,
) -> None:
    """Download the key's chains (JSON Lines, or CSV when OUT ends in .csv)."""
    fmt = "csv" if out.suffix.lower() == ".csv" else "jsonl"
    written = _client_call(url, key, lambda c: c.export_audit_log(out, format=fmt, since=since,
                                                                   until=until))  # fmt: skip
    typer.echo(json.dumps({"out": str(out), "format": fmt, "bytes": written}))


@audit_app.command("heads")
def heads(url: Url = None, key: Key = None) -> None:
    """Each chain's head as CHAIN:SEQ:HASH: keep these to pass as --anchor later."""
    for head in _client_call(url, key, lambda c: c.audit_heads()):
        typer.echo(f"{head.chain}:{head.seq}:{head.hash}")


def _anchors(items: list[str]) -> dict[str, tuple[int, str]]:
    anchors: dict[str, tuple[int, str]] = {}
    for item in items:
        parts = item.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit() or len(parts[2]) != 64:
            raise typer.BadParameter(f"{item!r}: an anchor is CHAIN:SEQ:HASH (sanitas audit heads)")
        anchors[parts[0]] = (int(parts[1]), parts[2])
    return anchors


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise typer.BadParameter(f"{path}:{number} is not JSON ({e.msg})") from e


@audit_app.command("verify")
def verify(
    file: Annotated[Path | None, typer.Option(help="an export (.jsonl) to check offline")] = None,
    anchor: Annotated[list[str], typer.Option(help="CHAIN:SEQ:HASH from an earlier `heads`")] = [],  # noqa: B006 - typer reads the default
) -> None:
    """Check every link of every chain; exit 1 and name each break when one is broken."""
    from service.audit_chain import check_database, check_entries

    anchors = _anchors(anchor)
    if file is not None:
        if file.suffix.lower() == ".csv":
            raise typer.BadParameter("CSV exports are for reading; verify the .jsonl export")
        try:
            found = check_entries(_lines(file), anchors)
        except KeyError as e:
            raise typer.BadParameter(f"{file}: an entry lacks {e} (not an audit export?)") from e
    else:
        from service.cli_support import database_sessions

        with database_sessions()() as session:
            found = check_database(session, anchors)
    typer.echo(json.dumps(found.summary(), indent=2))
    if not found.ok:
        raise typer.Exit(1)

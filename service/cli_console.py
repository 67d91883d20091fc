"""``sanitas console link``: a one-time sign-in link to the web console for a key, so
that an operator can hand a browser a session without the key being pasted anywhere."""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli_support import database_sessions, key_id_of

__all__ = ["console_app"]

console_app = typer.Typer(help="The web console (served by `sanitas serve` at /console).",
                          no_args_is_help=True)  # fmt: skip


@console_app.command("link")
def link(
    key: Annotated[str, typer.Argument(help="key id (see `sanitas keys list`) or the key")],
    url: Annotated[str, typer.Option(help="the server's address")] = "http://127.0.0.1:8000",
) -> None:
    """Print a sign-in link for the key, good once and for 15 minutes."""
    from service.http.console_sessions import LINK_MINUTES, make_link

    with database_sessions()() as session:
        try:
            token = make_link(session, key_id_of(session, key))
        except ValueError as e:  # unknown or revoked
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
    typer.echo(f"{url.rstrip('/')}/console/sign-in/{token}")
    typer.echo(f"(one use, within {LINK_MINUTES} minutes)", err=True)

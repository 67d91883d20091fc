"""``sanitas console link``: a one-time sign-in link to the web console for a key, so
that an operator can hand a browser a session without the key being pasted anywhere."""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli_support import database_sessions

__all__ = ["console_app"]

console_app = typer.Typer(help="The web console (served by `sanitas serve` at /console).",
                          no_args_is_help=True)  # fmt: skip


@console_app.command("link")
def link(
    key: Annotated[str, typer.Argument(help="key id (see `sanitas keys list`) or the key")],
    url: Annotated[str, typer.Option(help="the server's address")] = "http://127.0.0.1:8000",
) -> None:
    """Print a sign-in link for the key, good once and for 15 minutes."""
    from sqlalchemy import select

    from service.db import ApiKey
    from service.http.auth import hash_key
    from service.http.console_sessions import LINK_MINUTES, make_link

    with database_sessions()() as session:
        key_id = key
        if key.startswith("san_"):
            key_id = session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(key))) or ""
        found = session.get(ApiKey, key_id) if key_id else None
        if found is None or found.revoked_at is not None:
            typer.echo("error: no such live key", err=True)
            raise typer.Exit(2)
        token = make_link(session, key_id)
    typer.echo(f"{url.rstrip('/')}/console/sign-in/{token}")
    typer.echo(f"(one use, within {LINK_MINUTES} minutes)", err=True)

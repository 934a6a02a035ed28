"""`bookstore mail outbox`: the mail outbox as JSON lines, so reset flows can be tried.

Refused in production: the outbox holds live one-time reset tokens.
"""

from __future__ import annotations

import json

import typer

from adapters.engines import make_engine
from adapters.mail_outbox import MailOutbox
from bookstore.settings import get_settings

mail_app = typer.Typer(help="Look at outgoing mail.", no_args_is_help=True)


@mail_app.command("outbox")
def outbox(
    to: str | None = typer.Option(None, "--to", help="Only mail to this address."),
) -> None:
    """Print every message of the outbox, oldest first, one JSON object per line."""
    settings = get_settings()
    if settings.env == "production":
        typer.echo("error: the outbox is not shown when BOOKSTORE_ENV=production", err=True)
        raise typer.Exit(1)
    engine = make_engine(settings.resolved_event_store_url, pool_size=1)
    try:
        for mail in MailOutbox(engine).messages(recipient=to):
            typer.echo(json.dumps(mail.as_json()))
    finally:
        engine.dispose()

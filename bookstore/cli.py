"""The `bookstore` command line (Typer)."""

from __future__ import annotations

import ipaddress

import typer

from bookstore import bootstrap
from bookstore.cli_books import books_app
from bookstore.cli_demo import register_demo_commands
from bookstore.cli_events import register_event_commands
from bookstore.cli_mail import mail_app
from bookstore.cli_projections import register_projection_commands
from bookstore.logging_setup import logging_config
from bookstore.multiprocess_metrics import multiprocess_metrics_dir
from bookstore.settings import Settings, get_settings
from write_model.context import CommandContext
from write_model.errors import DomainError

app = typer.Typer(help="Bookstore: an event-sourced, CQRS bookstore backend.", no_args_is_help=True)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(mail_app, name="mail")
app.add_typer(books_app, name="books")
register_projection_commands(app)
register_demo_commands(app)
register_event_commands(app)


@app.command()
def migrate() -> None:
    """Create the event-store and credentials tables once, then run Alembic to head."""
    bootstrap.migrate(get_settings())
    typer.echo("migrated")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Uvicorn worker processes."),
    auto_migrate: bool = typer.Option(
        True, help="Migrate first when on the embedded SQLite default (one process)."
    ),
    forwarded_allow_ips: str | None = typer.Option(
        None,
        help="Proxies (comma-separated addresses or networks) whose X-Forwarded-For names "
        "the client, which the login throttle counts; default BOOKSTORE_FORWARDED_ALLOW_IPS "
        "(loopback). Never '*' on a port clients reach directly: they could pick their address.",
    ),
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    settings = get_settings()
    _refuse_the_built_in_key_beyond_loopback(settings, host)
    trusted_proxies = forwarded_allow_ips or settings.forwarded_allow_ips
    if auto_migrate and settings.database_url.startswith("sqlite"):
        bootstrap.migrate(settings)
    # Several workers share their metrics through files, so every scrape counts them all.
    with multiprocess_metrics_dir(workers):
        uvicorn.run(
            "bookstore.asgi:create",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=settings.log_level.lower(),
            log_config=logging_config(settings),
            proxy_headers=True,
            forwarded_allow_ips=trusted_proxies,
        )


def _is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


def _refuse_the_built_in_key_beyond_loopback(settings: Settings, host: str) -> None:
    """The development key is in the source: whoever reaches the server could sign tokens
    with it (outside development the settings refuse it already)."""
    if settings.has_placeholder_secret and not _is_loopback(host):
        typer.echo(
            f"error: refusing to serve on {host} with the built-in development secret key: "
            "anyone who can reach the server could forge its tokens. Set BOOKSTORE_SECRET_KEY "
            "to a random value of 32+ characters (for instance the output of `python -c "
            "'import secrets; print(secrets.token_urlsafe(48))'`), or serve on 127.0.0.1.",
            err=True,
        )
        raise typer.Exit(2)


@users_app.command("create-admin")
def create_admin(
    email: str = typer.Option(..., help="The admin's email (an existing user is promoted)."),
    password: str = typer.Option(
        ..., prompt=True, hide_input=True, confirmation_prompt=True, help="Used for a new user."
    ),
    full_name: str = typer.Option("", help="Full name, for a new user."),
) -> None:
    """Make EMAIL an active admin: the only way the first admin is made."""
    container = bootstrap.build(get_settings())
    try:
        if not 8 <= len(password) <= 128:
            raise typer.BadParameter("must be 8..128 characters", param_hint="--password")
        user_id, outcome = container.write_app.ensure_admin(
            CommandContext.system("cli-create-admin"),
            email=email,
            password_hash=container.hasher.hash(password),
            full_name=full_name,
        )
    except DomainError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        container.close()
    typer.echo(f"{outcome}: admin {email.strip().lower()} (id {user_id})")


def main() -> None:
    app()

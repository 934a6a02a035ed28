"""CLI: `bookstore projections status|catch-up`, and the Celery `worker` and `beat`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from bookstore import bootstrap
from bookstore.settings import get_settings

projections_app = typer.Typer(help="Inspect and drive the projections.", no_args_is_help=True)

BEAT_SCHEDULE_FILE = Path("var") / "celerybeat-schedule"


@projections_app.command("status")
def status(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per projection."),
) -> None:
    """Position, head, lag (events, seconds), state and last error of every projection,
    and the open transaction holding them back when one has for a while (PostgreSQL)."""
    container = bootstrap.build(get_settings())
    try:
        statuses = container.projection_statuses()
    finally:
        container.close()
    if as_json:
        for item in statuses:
            typer.echo(json.dumps(item.as_dict()))
        return
    table = Table("name", "position", "head", "lag (events)", "lag (s)", "state", "last error")
    for item in statuses:
        error = item.last_error or ""
        if item.error_position is not None:
            error = f"at {item.error_position}: {error}"
        table.add_row(
            item.name,
            str(item.position),
            str(item.head),
            str(item.lag_events),
            f"{item.lag_seconds:.1f}",
            item.state,
            error,
        )
    console = Console(width=200)
    console.print(table)
    for item in statuses:
        if item.held_back_by is not None:
            # Committed events wait behind it: until it ends, no projection can pass them.
            console.print(f"{item.name} is held back by {item.held_back_by.describe()}")


@projections_app.command("catch-up")
def catch_up(
    name: str | None = typer.Argument(None, help="One projection; all when omitted."),
    batch_size: int = typer.Option(0, min=0, help="Events per transaction (0: the setting)."),
) -> None:
    """Catch projections up with the event store now, in this process."""
    settings = get_settings()
    container = bootstrap.build(settings)
    failed = False
    try:
        runner = container.projections.runner
        if name is not None and name not in runner.names:
            raise typer.BadParameter(f"known: {', '.join(runner.names)}", param_hint="NAME")
        for projection in (name,) if name else runner.names:
            result = runner.catch_up_fully(
                projection, batch_size=batch_size or settings.projection_batch_size
            )
            line = f"{projection}: {result.applied} events applied, at {result.position}"
            if result.failed:
                failed = True
                line += f", STOPPED at event {result.error_position}: {result.error}"
            typer.echo(line)
    finally:
        container.close()
    if failed:
        raise typer.Exit(1)


def _require_broker() -> None:
    if not get_settings().broker_url:
        typer.echo(
            "error: BOOKSTORE_BROKER_URL is not set; without a broker, `bookstore serve` "
            "runs the projections in-process",
            err=True,
        )
        raise typer.Exit(2)


def worker(
    beat: bool = typer.Option(False, "--beat", help="Also run the beat schedule (one only!)."),
    concurrency: int = typer.Option(2, min=1, help="Worker processes."),
    pool: str = typer.Option("prefork", help="Celery pool: prefork, solo or threads."),
    loglevel: str = typer.Option("info", help="Celery log level."),
) -> None:
    """Run a Celery worker: projection catch-ups and the mail outbox."""
    _require_broker()
    from workers.celery_app import app as celery

    argv = ["worker", f"--loglevel={loglevel}", f"--concurrency={concurrency}", f"--pool={pool}"]
    if beat:
        BEAT_SCHEDULE_FILE.parent.mkdir(parents=True, exist_ok=True)
        argv += ["--beat", f"--schedule={BEAT_SCHEDULE_FILE}"]
    celery.worker_main(argv=argv)


def beat(loglevel: str = typer.Option("info", help="Celery log level.")) -> None:
    """Run Celery beat: a catch-up every second as the backstop (run exactly one)."""
    _require_broker()
    from workers.celery_app import app as celery

    BEAT_SCHEDULE_FILE.parent.mkdir(parents=True, exist_ok=True)
    celery.start(argv=["beat", f"--loglevel={loglevel}", f"--schedule={BEAT_SCHEDULE_FILE}"])


def register_projection_commands(app: typer.Typer) -> None:
    """Add `projections`, `worker` and `beat` to the main CLI."""
    app.add_typer(projections_app, name="projections")
    app.command()(worker)
    app.command()(beat)

"""`bookstore events export|replay`: the event log for analysts, from the command line.

- `export` writes the log (or a range of it) to JSON Lines, CSV or Parquet, upcast to the
  current event versions, in constant memory (`adapters/event_export.py` has the schema).
- `replay` builds the read model as it was at a position or a time into a database of
  its own (a SQLite file or a PostgreSQL database), for analysis
  (`projections/replay.py`). The live read database is never touched.

Progress bars and messages go to standard error; a JSON summary to standard output.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from adapters.engines import is_postgres, is_sqlite, make_engine, sqlalchemy_url
from adapters.event_export import DEFAULT_BATCH_SIZE, ExportFormat, export_events
from bookstore import bootstrap
from bookstore.settings import get_settings
from projections.registry import default_projections
from projections.replay import AsOf, replay_as_of
from read_model.tables import projection_tracking

events_app = typer.Typer(help="The event log, for analysts: export it, replay it.")

_FRACTION = re.compile(r"\.([0-9]+)")


def parse_time(value: str, option: str) -> datetime:
    """An RFC 3339 time (a naive one is taken as UTC)."""
    # Python reads at most six fraction digits; RFC 3339 allows more.
    cleaned = _FRACTION.sub(lambda m: "." + m.group(1)[:6], value.strip().upper(), count=1)
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        msg = f"{value!r} is not an RFC 3339 time such as 2026-11-26T08:40:13Z"
        raise typer.BadParameter(msg, param_hint=option) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_as_of(value: str) -> AsOf:
    """A store position (digits) or an RFC 3339 time."""
    if value.strip().isdigit():
        return AsOf(position=int(value))
    return AsOf(time=parse_time(value, "--as-of"))


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@events_app.command("export")
def export(  # noqa: PLR0917 (Typer passes the options by position)
    out: Annotated[Path, typer.Option("--out", dir_okay=False, help="The file to write.")],
    export_format: Annotated[
        ExportFormat, typer.Option("--format", case_sensitive=False, help="File format.")
    ] = ExportFormat.JSONL,
    after: Annotated[
        int, typer.Option("--after", min=0, help="Only events after this position.")
    ] = 0,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Only events recorded at or before this RFC 3339 time."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=100, max=100_000, help="Events per read (and Parquet row group).")
    ] = DEFAULT_BATCH_SIZE,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            max=32,
            help="Processes decoding pages beside this one (0: decode here). They pay off "
            "only with idle cores: on a busy 2-core machine 2 workers were slower.",
        ),
    ] = 0,
) -> None:
    """Write the event log to OUT (JSON Lines, CSV or Parquet), upcast to current versions."""
    until_time = parse_time(until, "--until") if until is not None else None
    errors = Console(stderr=True)
    container = bootstrap.build(get_settings())
    try:
        app = container.write_app
        head = container.write_app.head()
        with _progress(errors) as progress:
            task = progress.add_task(f"Exporting to {out.name}", total=max(head - after, 0))

            def advance(position: int, written: int) -> None:
                del written
                progress.update(task, completed=max(position - after, 0))

            summary = export_events(
                app,
                out,
                export_format,
                after=after,
                until=until_time,
                batch_size=batch_size,
                workers=workers,
                progress=advance,
            )
    finally:
        container.close()
    typer.echo(
        json.dumps(
            {
                "out": str(out),
                "format": str(export_format),
                "events": summary.events,
                "after": summary.after,
                "head": summary.head,
                "last_position": summary.last_position,
            }
        )
    )


def _check_target(into: str, live: str) -> None:
    """A SQLite file or a PostgreSQL database, and not the live one."""
    if not (is_sqlite(into) or is_postgres(into)):
        msg = "give a sqlite:///FILE or postgresql://... URL"
        raise typer.BadParameter(msg, param_hint="--into")
    first, second = make_url(sqlalchemy_url(into)), make_url(sqlalchemy_url(live))
    if is_sqlite(into) and is_sqlite(live):
        same = Path(first.database or "").resolve() == Path(second.database or "").resolve()
    else:
        keys = ("drivername", "host", "port", "database")
        same = all(getattr(first, key) == getattr(second, key) for key in keys)
    if same:
        msg = "that is the live database; give a separate, empty one"
        raise typer.BadParameter(msg, param_hint="--into")


def _tracked(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(select(func.count()).select_from(projection_tracking)).one()[0]
        )


@events_app.command("replay")
def replay(
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of",
            help="A store position (every event up to it) or an RFC 3339 time (every event "
            "recorded at or before it).",
        ),
    ],
    into: Annotated[
        str,
        typer.Option(
            "--into",
            help="An empty database for the result: sqlite:///FILE or postgresql://...",
        ),
    ],
    batch_size: Annotated[int, typer.Option(min=1, max=50_000, help="Events per batch.")] = 5000,
) -> None:
    """Build the read tables as they were at --as-of into a separate database, for analysis."""
    point = parse_as_of(as_of)
    settings = get_settings()
    for live in (settings.database_url, settings.resolved_event_store_url):
        _check_target(into, live)
    errors = Console(stderr=True)
    bootstrap.run_alembic_upgrade(into, history="read")
    target = make_engine(into, pool_size=2)
    container = bootstrap.build(settings)
    try:
        if _tracked(target):
            errors.print("error: the target already holds a read model; give an empty one")
            raise typer.Exit(1)
        projections = default_projections()
        with _progress(errors) as progress:
            head = container.write_app.head()
            tasks = {p.name: progress.add_task(p.name, total=head) for p in projections}

            def advance(name: str, position: int, now_head: int) -> None:
                progress.update(tasks[name], completed=position, total=max(now_head, position))

            result = replay_as_of(
                container.write_app,
                target,
                projections,
                point,
                batch_size=batch_size,
                progress=advance,
            )
    finally:
        container.close()
        target.dispose()
    summary = {
        "as_of": point.describe(),
        "last_position": result.last_position,
        "applied": result.applied,
        "failed": result.failed,
        "held_back": result.held_back,
    }
    typer.echo(json.dumps(summary))
    if result.failed:
        errors.print(f"error: a projection stopped at a failing event: {result.failed}")
        raise typer.Exit(1)
    if result.held_back:
        errors.print(
            "warning: events were held back by a transaction still open; "
            f"{', '.join(result.held_back)} may miss the newest of them"
        )


def register_event_commands(app: typer.Typer) -> None:
    """Add `bookstore events ...` to the main command line."""
    app.add_typer(events_app, name="events")

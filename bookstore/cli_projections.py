"""CLI: `bookstore projections status|catch-up|rebuild|cancel-rebuild`, and the Celery
`worker` and `beat`."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from bookstore import bootstrap
from bookstore.settings import get_settings
from projections.bulk_load import DEFAULT_BULK_BATCH_SIZE
from projections.rebuild import NoRebuildError, RebuildOptions, Rebuilds, RebuildStatus
from read_model.rebuilds import Rebuild, RebuildRunningError

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
    table = Table(
        "name",
        "version",
        "position",
        "head",
        "lag (events)",
        "lag (s)",
        "state",
        "last error",
        "rebuild",
    )
    for item in statuses:
        error = item.last_error or ""
        if item.error_position is not None:
            error = f"at {item.error_position}: {error}"
        table.add_row(
            item.name,
            str(item.version),
            str(item.position),
            str(item.head),
            str(item.lag_events),
            f"{item.lag_seconds:.1f}",
            item.state,
            error,
            _describe_rebuild(item.rebuild) if item.rebuild else "",
        )
    console = Console(width=200)
    console.print(table)
    # Committed events wait behind an open transaction: until it ends, no projection can
    # pass them. Usually one transaction holds them all back: name it once.
    held: dict[str, list[str]] = {}
    for item in statuses:
        if item.held_back_by is not None:
            held.setdefault(item.held_back_by.describe(), []).append(item.name)
    for holder, names in held.items():
        console.print(f"held back ({', '.join(names)}) by {holder}")


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


# ---------------------------------------------------------------------------- rebuilds


def _describe_rebuild(status: RebuildStatus) -> str:
    """One cell: `v3 loading 42% (31,000 ev/s, ETA 20 s)`, or how the last one ended."""
    rebuild = status.rebuild
    text = f"v{rebuild.version} {status.state}"
    if rebuild.running:
        text += f" {status.ratio:.0%} ({status.events_per_second:,.0f} ev/s"
        eta = status.eta_seconds
        text += f", ETA {eta:.0f} s)" if eta is not None else ")"
    elif rebuild.last_error:
        text += f" at {rebuild.error_position}: {rebuild.last_error}"
    return text


class _RebuildBar:
    """A rich progress bar fed with the rebuild's row after each step."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description:<12}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} positions"),
            TextColumn("{task.fields[rate]:>10,.0f} events/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self.task: TaskID | None = None
        self.started = time.monotonic()
        self.applied_at_start: int | None = None

    def show(self, rebuild: Rebuild) -> None:
        if self.applied_at_start is None:
            self.applied_at_start = rebuild.events_applied
        elapsed = max(1e-6, time.monotonic() - self.started)
        rate = (rebuild.events_applied - self.applied_at_start) / elapsed
        total = max(rebuild.target_position, rebuild.position, 1)
        if self.task is None:
            self.task = self.progress.add_task(rebuild.state, total=total, rate=rate)
        self.progress.update(
            self.task,
            description=rebuild.state,
            completed=rebuild.position,
            total=total,
            rate=rate,
        )


def _rebuilds_for(container: bootstrap.Container, options: RebuildOptions) -> Rebuilds:
    return Rebuilds(container.projections.runner, options)


def _follow(rebuilds: Rebuilds, name: str, bar: _RebuildBar) -> Rebuild:
    """Show the progress of a rebuild another process runs, until it ends."""
    while True:
        status = rebuilds.statuses().get(name)
        if status is None:
            raise typer.Exit(1)
        bar.show(status.rebuild)
        if not status.rebuild.running or not status.owner_alive:
            return status.rebuild
        time.sleep(0.5)


def _report(console: Console, name: str, final: Rebuild, alive: bool) -> None:
    if final.state == "done":
        console.print(
            f"{name}: version {final.version} serves ({final.events_applied:,} events applied)"
        )
        return
    if final.running:
        how = "runs elsewhere" if alive else "interrupted: run the command again to resume it"
        console.print(f"{name}: rebuild of version {final.version} {how} ({final.state})")
        raise typer.Exit(130 if not alive else 0)
    detail = f" at event {final.error_position}: {final.last_error}" if final.last_error else ""
    console.print(
        f"{name}: rebuild of version {final.version} {final.state}{detail}; "
        f"version {final.from_version} serves on"
    )
    raise typer.Exit(1)


@projections_app.command("rebuild")
def rebuild(  # noqa: PLR0917 (Typer passes the options by position)
    name: str = typer.Argument(..., help="The projection to rebuild."),
    cancel: bool = typer.Option(False, "--cancel", help="Cancel its running rebuild instead."),
    batch_size: int = typer.Option(
        DEFAULT_BULK_BATCH_SIZE, min=100, help="Events folded per batch while loading."
    ),
    workers: int = typer.Option(
        2, min=0, help="Processes folding the log (PostgreSQL, logs of 100,000+ events)."
    ),
    unlogged: bool = typer.Option(
        False, "--unlogged", help="Load into UNLOGGED tables, then SET LOGGED (PostgreSQL)."
    ),
    detach: bool = typer.Option(
        False, "--detach", help="With a broker: hand it to the workers and return."
    ),
) -> None:
    """Rebuild a projection blue/green: version N+1 beside the serving N, then switch.

    Runs here with a progress bar (Ctrl-C interrupts it: run the command again to resume,
    or `cancel-rebuild`). If a rebuild of NAME runs elsewhere already, follows it; if one
    was interrupted, resumes it.
    """
    if cancel:
        cancel_rebuild(name, wait=True)
        return
    settings = get_settings()
    container = bootstrap.build(settings)
    console = Console(stderr=True)
    try:
        if name not in container.projections.runner.names:
            known = ", ".join(container.projections.runner.names)
            raise typer.BadParameter(f"known: {known}", param_hint="NAME")
        options = RebuildOptions(
            batch_size=batch_size, workers=workers, unlogged=unlogged, pause_gc=True
        )
        rebuilds = _rebuilds_for(container, options)
        bar = _RebuildBar(console)
        try:
            requested = rebuilds.request(name, requested_by="cli")
        except RebuildRunningError as running:
            console.print(f"{name}: {running}; following it")
            with bar.progress:
                final = _follow(rebuilds, name, bar)
            _report(console, name, final, rebuilds.owner_alive(final))
            return
        console.print(f"{name}: rebuilding version {requested.version} beside the serving one")
        waker = container.projections.waker
        if detach and waker is not None:
            waker.rebuild(name)
            console.print(f"{name}: handed to the workers (follow with `projections status`)")
            return
        final = _run_with_bar(rebuilds, name, bar)
        _report(console, name, final, alive=False)
    finally:
        container.close()


def _run_with_bar(rebuilds: Rebuilds, name: str, bar: _RebuildBar) -> Rebuild:
    """Run the rebuild in a thread; the main thread shows progress and takes Ctrl-C."""
    stop = threading.Event()
    outcome: list[Rebuild] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            outcome.append(rebuilds.run(name, observer=bar.show, should_stop=stop.is_set))
        except BaseException as error:  # reported by the main thread
            failure.append(error)

    thread = threading.Thread(target=work, name=f"rebuild-{name}")
    with bar.progress:
        thread.start()
        try:
            while thread.is_alive():
                thread.join(0.2)
        except KeyboardInterrupt:
            stop.set()
            bar.progress.console.print("stopping at the next step (resumable)...")
            thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


@projections_app.command("cancel-rebuild")
def cancel_rebuild(
    name: str = typer.Argument(..., help="The projection whose rebuild to cancel."),
    wait: bool = typer.Option(True, help="Wait until the rebuild has stopped."),
) -> None:
    """Cancel the running rebuild of a projection: its new tables are dropped, the serving
    version goes on untouched."""
    container = bootstrap.build(get_settings())
    try:
        if name not in container.projections.runner.names:
            known = ", ".join(container.projections.runner.names)
            raise typer.BadParameter(f"known: {known}", param_hint="NAME")
        rebuilds = _rebuilds_for(container, RebuildOptions())
        try:
            found = rebuilds.cancel(name)
        except NoRebuildError:
            typer.echo(f"{name}: no rebuild is running")
            raise typer.Exit(1) from None
        deadline = time.monotonic() + 120
        while wait and found.running and time.monotonic() < deadline:
            time.sleep(0.5)
            status = rebuilds.statuses().get(name)
            if status is None:
                break
            found = status.rebuild
        state = found.state if not found.running else f"{found.state} (cancel requested)"
        typer.echo(f"{name}: rebuild of version {found.version} {state}")
    finally:
        container.close()


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

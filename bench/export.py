"""Event export throughput on PostgreSQL: `bookstore events export --format parquet`
over 1,000,000 events, beside reading the same notifications from the store, in one run.

- baseline: `recorder.select_notifications(after, 10_000, inclusive_of_start=False)` page
  after page over the whole log: the raw rows, undecoded (what any export must at least do);
- reference: the same pages decoded by the application's mapper (JSON and upcasting);
- the export's own read: `event_columns.read_rows` pages (binary keyset pages, plain tuples);
- figure: `export_events(..., ExportFormat.PARQUET)` (the CLI's default): read, decode
  (directly from the stored JSON, or by the mapper where an upcast applies), encode
  `data`/`metadata` as JSON and write zstd Parquet row groups of 10,000, all in one
  process; and the same with two worker processes decoding and encoding pages while the
  main one reads and writes (`--workers 2`).

Each is run in a child process of its own, so its peak memory (max RSS) is its own: the
export's shows that it streams. Set-up (not timed) saves the events in big batches, many
aggregates per save: a registration and four changes per book (restocks, a price change, a
stock count). Target: 50,000 events/s.

`python -m bench.export [--events N] [--runs N]`. A fresh database per run, dropped after.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import fresh_database
from bookstore import bootstrap
from bookstore.settings import Settings
from tests.factories import random_isbn13, random_price
from write_model.book import Book
from write_model.context import CommandContext

EVENTS = 1_000_000
EVENTS_PER_BOOK = 5
EVENTS_PER_SAVE = 5000
PAGE = 10_000
TARGET = 50_000
WORKERS = 2
SECRET = "bench-secret-key-0123456789abcdef0123456789"


def settings_for(url: str) -> Settings:
    return Settings(env="test", database_url=url, secret_key=SECRET, broker_url=None)


def store_events(url: str, events: int) -> int:
    """Save `events` Book events, `EVENTS_PER_SAVE` to a transaction (not timed)."""
    rng = random.Random(7)
    settings = settings_for(url)
    bootstrap.migrate(settings)
    container = bootstrap.build(settings)
    app = container.write_app
    ctx = CommandContext.system("bench-export")
    pending: list[Book] = []
    started = time.perf_counter()
    try:
        for n in range(events // EVENTS_PER_BOOK):
            book = Book.register(
                title=f"Bench title {n}",
                author=rng.choice(("Ursula K. Le Guin", "Frank Herbert", "Jane Austen")),
                isbn=random_isbn13(rng),
                price=random_price(rng),
                stock=rng.randint(0, 50),
                category=rng.choice(("fiction", "history", "poetry")),
            )
            book.restock(rng.randint(1, 9))
            book.change_details(price=book.price + Decimal("1.00"))
            book.restock(rng.randint(1, 9))
            book.correct_stock(book.stock + 1)
            pending.append(book)
            if len(pending) * EVENTS_PER_BOOK >= EVENTS_PER_SAVE:
                app._save(ctx, *pending)
                pending.clear()
        if pending:
            app._save(ctx, *pending)
        stored = app.head()
    finally:
        container.close()
    seconds = time.perf_counter() - started
    print(f"  set-up: {stored:,} events saved in {seconds:.0f} s ({stored / seconds:,.0f}/s)")
    return stored


# ----------------------------------------------------------------------------- children


def _child(mode: str, url: str, out: str) -> dict[str, Any]:
    """One measurement, in this (child) process."""
    from adapters.event_columns import read_rows
    from adapters.event_export import ExportFormat, export_events
    from adapters.event_feed import EventFilter

    container = bootstrap.build(settings_for(url))
    app = container.write_app
    try:
        started = time.perf_counter()
        events = 0
        if mode.startswith("export"):
            workers = WORKERS if mode == "export_workers" else 0
            events = export_events(
                app, Path(out), ExportFormat.PARQUET, batch_size=PAGE, workers=workers
            ).events
        elif mode == "rows":
            after = 0
            while rows := read_rows(app, EventFilter(after=after), PAGE):
                events += len(rows)
                after = rows[-1][0]
        else:
            after = 0
            while True:
                page = app.recorder.select_notifications(after, PAGE, inclusive_of_start=False)
                if not page:
                    break
                if mode == "decode":
                    for notification in page:
                        app.mapper.to_domain_event(notification)
                events += len(page)
                after = page[-1].id
        seconds = time.perf_counter() - started
    finally:
        container.close()
    return {"events": events, "seconds": seconds}


def measure(mode: str, url: str, out: Path) -> dict[str, Any]:
    """Run one measurement in a child process; its figures and its peak memory."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run(
        [sys.executable, "-m", "bench.export", "--child", mode, url, str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    # RUSAGE_CHILDREN keeps the largest child so far: run the export first.
    found["max_rss_mib"] = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    found["max_rss_mib"] /= 1024
    found["rate"] = found["events"] / found["seconds"]
    return found


def one_run(events: int) -> dict[str, dict[str, Any]]:
    with fresh_database("bench_export") as url, tempfile.TemporaryDirectory() as folder:
        stored = store_events(url, events)
        out = Path(folder) / "events.parquet"
        modes = ("export", "export_workers", "read", "decode", "rows")
        figures = {mode: measure(mode, url, out) for mode in modes}
        size = out.stat().st_size
        for mode, found in figures.items():
            assert found["events"] == stored, (mode, found, stored)
        figures["export"]["file_mib"] = size / 2**20
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__)
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--child", nargs=3, metavar=("MODE", "URL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(*args.child)))
        return
    print(f"Export to Parquet, {args.events:,} events on PostgreSQL ({args.runs} run(s))")
    runs = [one_run(args.events) for _ in range(args.runs)]

    def median(mode: str, key: str) -> float:
        return statistics.median(run[mode][key] for run in runs)

    export, workers, read, decode, rows = (
        median(m, "rate") for m in ("export", "export_workers", "read", "decode", "rows")
    )
    print(f"  baseline, select_notifications pages of {PAGE:,}: {read:,.0f} events/s")
    print(f"  reference, the same decoded by the mapper: {decode:,.0f} events/s")
    print(f"  the export's own read (read_rows pages, undecoded): {rows:,.0f} events/s")
    print(
        f"  export to Parquet: {export:,.0f} events/s (ratio to the raw read "
        f"{export / read:.2f}; target {TARGET:,}: {'met' if export >= TARGET else 'NOT met'})"
    )
    print(f"  the same with {WORKERS} worker processes decoding pages: {workers:,.0f} events/s")
    print(
        f"  export file {median('export', 'file_mib'):.1f} MiB; peak RSS of the exporting "
        f"process {median('export', 'max_rss_mib'):.0f} MiB"
    )
    for n, run in enumerate(runs, start=1):
        print(f"  run {n}: " + ", ".join(f"{m} {f['rate']:,.0f}/s" for m, f in run.items()))


if __name__ == "__main__":
    main()

"""Blue/green rebuild and the follow path on PostgreSQL, each beside a baseline of the same run.

`python -m bench.rebuild [--events N] [--runs R] [--lag-seconds S] [--skip-lag]`:

1. **Rebuild**: N Book events (one per book, default 1,000,000) are written straight into
   the events table (COPY of the mapper's stored events: set-up, not timed), then
   `book_listing` is rebuilt R times (the first beside an empty version 1, the others
   beside a serving version that has the whole log), each timed phase by phase. Baseline:
   COPY of the same rows (book_listing's, as tuples in memory) into a bare table with no
   key and no index, the floor for writing them at all.
2. **Catch-up of the follow path** before and after the index diet: the normal runner
   (batches of 500) over 100,000 of those events into book_listing as read-side revision
   0004 left it (twelve secondary indexes), then as the head has it (six), alternately.
3. **Lag** (unless `--skip-lag`): `bench.projections.lag_bench`, 100 commands/s, one
   Celery worker; commit -> row visible (the NOTIFY of the serving version).

Set `BOOKSTORE_BENCH_POSTGRES_URL` to run on a cluster of your own: the commit watermark is
cluster-wide, so another user's open transactions hold projections back and add to lag.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import resource
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import psycopg

from bench.common import fresh_database
from bookstore import bootstrap
from bookstore.settings import Settings
from projections.book_listing import BookListingProjection
from projections.rebuild import RebuildOptions, Rebuilds
from projections.runner import Runner
from read_model.rebuilds import Rebuild
from read_model.tables import book_listing
from tests.factories import random_isbn13
from write_model.book import Book

SECRET = "bench-secret-key-0123456789abcdef0123456789"
EVENTS = 1_000_000
CATCH_UP_EVENTS = 100_000
STORE_CHUNK = 50_000
COPY_CHUNK = 20_000
AUTHORS = ("Ursula K. Le Guin", "Frank Herbert", "Jane Austen", "Anon", "Mary Shelley")
CATEGORIES = ("sf", "fantasy", "classic", "poetry", "history", "travel")


def settings_for(url: str) -> Settings:
    return Settings(env="test", database_url=url, secret_key=SECRET, broker_url=None)


# ---------------------------------------------------------------------------- set-up


def _book(n: int, rng: random.Random) -> Book:
    return Book.register(
        title=f"Bench title {n} {rng.random():.6f}",
        author=rng.choice(AUTHORS),
        isbn=random_isbn13(rng),
        price=Decimal(rng.randrange(100, 10_000)) / 100,
        stock=rng.randrange(0, 50),
        category=rng.choice(CATEGORIES),
    )


def store_registrations(url: str, events: int, restocks_per_book: int = 0) -> None:
    """`events` Book events, stored by COPY in chunks (one transaction each): a
    registration per book, then (with `restocks_per_book`) rounds of one restock of each
    book in a random order, so that later batches update rows earlier ones wrote."""
    rng = random.Random(3)
    container = bootstrap.build(settings_for(url))
    mapper = container.write_app.mapper
    metadata = {"correlation_id": "bench-rebuild", "actor_id": None}
    books = events // (1 + restocks_per_book)
    kept: list[Book] = []

    def stored_events() -> Iterator[tuple[object, ...]]:
        for n in range(books):
            book = _book(n, rng)
            if restocks_per_book:
                kept.append(book)
            yield from _stored(book)
        for _ in range(restocks_per_book):
            rng.shuffle(kept)
            for book in kept:
                book.restock(rng.randrange(1, 5))
                yield from _stored(book)

    def _stored(book: Book) -> Iterator[tuple[object, ...]]:
        for event in book.collect_events():
            object.__setattr__(event, "metadata", metadata)
            stored = mapper.to_stored_event(event)
            yield (stored.originator_id, stored.originator_version, stored.topic, stored.state)

    started = time.perf_counter()
    try:
        with psycopg.connect(url) as connection:
            rows = stored_events()
            while True:
                chunk = list(itertools.islice(rows, STORE_CHUNK))
                if not chunk:
                    break
                with (
                    connection.cursor() as cursor,
                    cursor.copy(
                        "COPY bookstore_events (originator_id, originator_version, topic, state)"
                        " FROM STDIN (FORMAT BINARY)"
                    ) as copy,
                ):
                    copy.set_types(["uuid", "int8", "text", "bytea"])
                    for row in chunk:
                        copy.write_row(row)
                connection.commit()
    finally:
        container.close()
    seconds = time.perf_counter() - started
    print(f"  set-up: {events:,} events stored in {seconds:.0f} s", flush=True)


# ---------------------------------------------------------------------------- rebuild


@dataclass
class Phases:
    """When each state of a rebuild was first seen."""

    started: float = field(default_factory=time.perf_counter)
    seen: dict[str, float] = field(default_factory=dict)

    def observe(self, row: Rebuild) -> None:
        self.seen.setdefault(row.state, time.perf_counter())

    def durations(self, ended: float) -> dict[str, float]:
        order = sorted(self.seen.items(), key=lambda item: item[1])
        marks = [("start", self.started), *order, ("end", ended)]
        return {
            name: later - at
            for (name, at), (_, later) in itertools.pairwise(marks)
            if name != "start"
        }


def _ticks(pid: int) -> tuple[int, int]:
    """(own utime+stime, waited-for children's) of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def postgres_cpu_seconds(url: str) -> float | None:
    """CPU time the whole PostgreSQL cluster has used so far (local clusters only): the
    postmaster, its live children, and the children it has reaped."""
    try:
        with psycopg.connect(url, autocommit=True) as connection:
            row = connection.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        with open(f"/proc/{row[0]}/status") as status:
            ppid = next(int(line.split()[1]) for line in status if line.startswith("PPid:"))
        own, reaped = _ticks(ppid)
        live = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == ppid:
                    live += int(fields[11]) + int(fields[12])
            except OSError:
                continue
        return (own + reaped + live) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, psycopg.Error):
        return None


def python_cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (fold workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass(frozen=True)
class RebuildRun:
    seconds: float
    events: int
    phases: dict[str, float]
    python_cpu: float
    postgres_cpu: float | None

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds


def rebuild_once(url: str, workers: int) -> RebuildRun:
    container = bootstrap.build(settings_for(url))
    try:
        rebuilds = Rebuilds(
            container.projections.runner, RebuildOptions(workers=workers, pause_gc=True)
        )
        python_before, postgres_before = python_cpu_seconds(), postgres_cpu_seconds(url)
        phases = Phases()
        rebuilds.request("book_listing", requested_by="bench")
        final = rebuilds.run("book_listing", observer=phases.observe)
        ended = time.perf_counter()
        assert final.state == "done", final
        postgres_after = postgres_cpu_seconds(url)
        postgres = (
            postgres_after - postgres_before
            if postgres_after is not None and postgres_before is not None
            else None
        )
        return RebuildRun(
            ended - phases.started,
            final.events_applied,
            phases.durations(ended),
            python_cpu_seconds() - python_before,
            postgres,
        )
    finally:
        container.close()


LISTING_TYPES = [
    "uuid", "text", "text", "text", "int8", "int4", "text",
    "timestamptz", "timestamptz", "int4", "text", "text", "text",
]  # fmt: skip


def listing_chunks(url: str) -> Iterator[list[tuple[object, ...]]]:
    """book_listing's rows as typed tuples, a chunk at a time (read by COPY, not timed)."""
    columns = ", ".join(column.name for column in book_listing.columns)
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        chunk: list[tuple[object, ...]] = []
        with cursor.copy(
            f"COPY (SELECT {columns} FROM book_listing) TO STDOUT (FORMAT BINARY)"
        ) as copy:
            copy.set_types(LISTING_TYPES)
            for row in copy.rows():
                chunk.append(tuple(row))
                if len(chunk) == COPY_CHUNK:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk


def copy_baseline(url: str) -> tuple[float, int]:
    """Rows/s of COPY of book_listing's rows into a bare table, a transaction per chunk."""
    columns = ", ".join(column.name for column in book_listing.columns)
    seconds = 0.0
    rows = 0
    with psycopg.connect(url) as connection:
        connection.execute("DROP TABLE IF EXISTS bench_bare")
        connection.execute("CREATE TABLE bench_bare (LIKE book_listing)")
        connection.commit()
        for chunk in listing_chunks(url):
            started = time.perf_counter()
            with (
                connection.cursor() as cursor,
                cursor.copy(f"COPY bench_bare ({columns}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.set_types(LISTING_TYPES)
                for row in chunk:
                    copy.write_row(row)
            connection.commit()
            seconds += time.perf_counter() - started
            rows += len(chunk)
        connection.execute("DROP TABLE bench_bare")
        connection.commit()
    return rows / seconds, rows


def rebuild_bench(events: int, runs: int, workers: int) -> None:
    print(f"# Rebuild of book_listing (PostgreSQL), {events:,} events, one per book")
    with fresh_database("bench_rebuild") as url:
        bootstrap.migrate(settings_for(url))
        store_registrations(url, events)
        results = []
        for run in range(runs):
            result = rebuild_once(url, workers)
            results.append(result)
            beside = "an empty version" if run == 0 else "a serving version at the head"
            phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.phases.items())
            cpu = f"CPU: Python {result.python_cpu:.1f} s"
            if result.postgres_cpu is not None:
                cpu += f", PostgreSQL {result.postgres_cpu:.1f} s (whole cluster)"
            print(
                f"  run {run + 1} (beside {beside}): {result.seconds:.1f} s, "
                f"{result.events_per_second:,.0f} events/s ({phases}; {cpu})",
                flush=True,
            )
        copy_rate, rows = copy_baseline(url)
    seconds = statistics.median(r.seconds for r in results)
    rate = events / seconds
    print()
    print("| what | figure | baseline in the same run | ratio |")
    print("|---|---|---|---|")
    print(
        f"| rebuild, {events:,} events, {workers} fold processes (median of {runs}) "
        f"| {seconds:.1f} s, {rate:,.0f} events/s "
        f"| COPY of the same {rows:,} rows into a bare table: {copy_rate:,.0f} rows/s "
        f"| {rate / copy_rate:.2f} |"
    )
    print()


# ---------------------------------------------------------------------------- catch-up


def catch_up_once(url: str) -> float:
    """Events/s of the normal runner over the whole log into an empty book_listing."""
    container = bootstrap.build(settings_for(url))
    try:
        with container.read_engine.begin() as connection:
            connection.exec_driver_sql("TRUNCATE book_listing")
            connection.exec_driver_sql("DELETE FROM projection_tracking")
        runner = Runner(container.write_app, container.read_engine, [BookListingProjection()])
        started = time.perf_counter()
        result = runner.catch_up_fully("book_listing", batch_size=500)
        seconds = time.perf_counter() - started
        assert result.caught_up, result
        return result.applied / seconds
    finally:
        container.close()


def catch_up_bench(events: int, runs: int) -> None:
    print(f"# Catch-up of the follow path, {events:,} events, batches of 500")
    print()
    print("| workload | book_listing indexes | catch-up events/s (median) | runs | after/before |")
    print("|---|---|---|---|---|")
    for label, restocks in (("one event per book", 0), ("a registration + 4 restocks", 4)):
        with fresh_database("bench_rebuild_follow") as url:
            bootstrap.migrate(settings_for(url))
            store_registrations(url, events, restocks_per_book=restocks)
            before: list[float] = []
            after: list[float] = []
            for _ in range(runs):
                bootstrap.run_alembic_upgrade(url, "0004")
                before.append(catch_up_once(url))
                bootstrap.run_alembic_upgrade(url)
                after.append(catch_up_once(url))
        b, a = statistics.median(before), statistics.median(after)
        print(
            f"| {label} | twelve (revision 0004) | {b:,.0f} "
            f"| {', '.join(f'{x:,.0f}' for x in before)} | |"
        )
        print(
            f"| {label} | six (head) | {a:,.0f} "
            f"| {', '.join(f'{x:,.0f}' for x in after)} | {a / b:.2f} |",
            flush=True,
        )
    print()


def lag(seconds: float) -> None:
    from bench.projections import lag_bench

    measured = lag_bench(seconds)
    print(
        f"# Lag, one Celery worker, {measured.issued / measured.seconds:.0f} commands/s for "
        f"{measured.seconds:.0f} s: commit -> row visible p50 {measured.p50_ms:.1f} ms, "
        f"p99 {measured.p99_ms:.1f} ms, max {measured.max_ms:.1f} ms"
        + (f", {measured.missing} never seen" if measured.missing else "")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rebuild", description=__doc__)
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--runs", type=int, default=2, help="rebuilds (median)")
    parser.add_argument("--workers", type=int, default=2, help="fold processes")
    parser.add_argument("--catch-up-events", type=int, default=CATCH_UP_EVENTS)
    parser.add_argument("--catch-up-runs", type=int, default=3)
    parser.add_argument("--lag-seconds", type=float, default=30.0)
    parser.add_argument("--skip-lag", action="store_true")
    parser.add_argument(
        "--only", choices=("rebuild", "catch-up", "lag"), action="append", help="only this part"
    )
    args = parser.parse_args(argv)
    parts = args.only or ["rebuild", "catch-up"] + ([] if args.skip_lag else ["lag"])
    print(f"PostgreSQL: {os.environ.get('BOOKSTORE_BENCH_POSTGRES_URL', 'the shared cluster')}")
    if "rebuild" in parts:
        rebuild_bench(args.events, args.runs, args.workers)
    if "catch-up" in parts:
        catch_up_bench(args.catch_up_events, args.catch_up_runs)
    if "lag" in parts:
        lag(args.lag_seconds)


if __name__ == "__main__":
    main()

"""Projection benchmarks on PostgreSQL (and Redis), each beside its baseline, in one run.

1. catch_up throughput: 100,000 stored events caught up into book_listing by
   `Runner.catch_up` (batch size stated), beside the raw batched-INSERT rate of the very
   rows it produced (multi-row VALUES, 1,000 rows per commit, psycopg, same table and
   indexes). Two workloads: one event per book (events = rows), and five events per book
   (a registration and four changes, so rows = events / 5).
2. Projection lag under a steady 100 commands/s with one Celery worker process on Redis:
   from a command's commit (a commit listener stamps it) to its projection's NOTIFY of a
   position at or past it (the row is visible from then on). p50 and p99.

`python -m bench.projections [--runs N] [--scale X] [--lag-seconds S]`. Every run gets a
fresh database, dropped afterwards; the lag bench uses Redis database 15, flushed.
"""

from __future__ import annotations

import argparse
import bisect
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
from sqlalchemy import delete, select

from bench.common import fresh_database
from bookstore import bootstrap
from bookstore.bootstrap import Container
from bookstore.settings import Settings
from projections.book_listing import BookListingProjection
from projections.runner import POSITIONS_CHANNEL, Runner
from read_model.tables import book_listing, projection_tracking
from tests.factories import random_isbn13, random_price
from write_model.application import Bookstore
from write_model.book import Book
from write_model.context import CommandContext

REDIS_URL = os.environ.get("BOOKSTORE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
SECRET = "bench-secret-key-0123456789abcdef0123456789"
EVENTS = 100_000
BATCH_SIZES = (500, 5000)
RAW_ROWS_PER_COMMIT = 1000
COMMANDS_PER_SECOND = 100
REPO = Path(__file__).resolve().parent.parent


def settings_for(url: str, broker_url: str | None = None) -> Settings:
    return Settings(
        env="test",
        database_url=url,
        secret_key=SECRET,
        broker_url=broker_url,
        password_hash_time_cost=1,
        password_hash_memory_kib=8 * 1024,
        password_hash_parallelism=1,
    )


def store_books(app: Bookstore, events: int, events_per_book: int, rng: random.Random) -> None:
    """Save `events` Book events in bulk (not timed): 1,000 events per transaction."""
    books_per_save = max(1, 1000 // events_per_book)
    pending: list[Book] = []
    for n in range(events // events_per_book):
        book = Book.register(
            title=f"Bench title {n} {rng.random():.6f}",
            author=rng.choice(("Ursula K. Le Guin", "Frank Herbert", "Jane Austen", "Anon")),
            isbn=random_isbn13(rng),
            price=random_price(rng),
            stock=rng.randint(0, 50),
            category=rng.choice(("sf", "fantasy", "classic", "poetry")),
        )
        for step in range(events_per_book - 1):
            if step % 2 == 0:
                book.restock(rng.randint(1, 5))
            else:
                book.change_details(price=random_price(rng))
        pending.append(book)
        if len(pending) == books_per_save:
            app.save(*pending)
            pending = []
    if pending:
        app.save(*pending)


def raw_insert_rate(url: str, rows: list[dict[str, Any]]) -> float:
    """Rows/s of multi-row INSERT ... VALUES into the empty book_listing, 1,000 per commit."""
    columns = [column.name for column in book_listing.columns]
    placeholders = "(" + ",".join(["%s"] * len(columns)) + ")"
    values = [tuple(row[name] for name in columns) for row in rows]
    with psycopg.connect(url) as connection:
        connection.execute("TRUNCATE book_listing")
        connection.commit()
        started = time.perf_counter()
        for start in range(0, len(values), RAW_ROWS_PER_COMMIT):
            chunk = values[start : start + RAW_ROWS_PER_COMMIT]
            connection.execute(
                f"INSERT INTO book_listing ({','.join(columns)}) VALUES "
                + ",".join([placeholders] * len(chunk)),
                [value for row in chunk for value in row],
            )
            connection.commit()
        return len(values) / (time.perf_counter() - started)


@dataclass(frozen=True)
class Throughput:
    events_per_book: int
    batch_size: int
    events_per_second: float
    rows: int
    raw_rows_per_second: float


def catch_up_bench(events: int, events_per_book: int, runs: int) -> list[Throughput]:
    rng = random.Random(events_per_book)
    with fresh_database("bench_projections") as url:
        settings = settings_for(url)
        bootstrap.migrate(settings)
        container = bootstrap.build(settings)
        try:
            store_books(container.write_app, events, events_per_book, rng)
            # A change that changes nothing records no event: count what was stored.
            stored = container.write_app.head()
            runner = Runner(container.write_app, container.read_engine, [BookListingProjection()])
            results: list[Throughput] = []
            for batch_size in BATCH_SIZES:
                rates: list[float] = []
                raw: list[float] = []
                for _ in range(runs):
                    with container.read_engine.begin() as connection:
                        connection.execute(delete(book_listing))
                        connection.execute(delete(projection_tracking))
                    started = time.perf_counter()
                    result = runner.catch_up_fully("book_listing", batch_size=batch_size)
                    elapsed = time.perf_counter() - started
                    if not result.caught_up or result.applied != stored:
                        raise RuntimeError(f"catch-up did not finish: {result}")
                    rates.append(stored / elapsed)
                    with container.read_engine.connect() as connection:
                        rows = [dict(r._mapping) for r in connection.execute(select(book_listing))]
                    raw.append(raw_insert_rate(url, rows))
                results.append(
                    Throughput(
                        events_per_book=events_per_book,
                        batch_size=batch_size,
                        events_per_second=statistics.median(rates),
                        rows=len(rows),
                        raw_rows_per_second=statistics.median(raw),
                    )
                )
            return results
        finally:
            container.close()


# ---------------------------------------------------------------------------- lag


class NotifyRecorder:
    """Stamps every position NOTIFY as it arrives: the moment rows became visible."""

    def __init__(self, url: str) -> None:
        self.arrivals: dict[str, list[tuple[float, int]]] = {}
        self._stopping = threading.Event()
        self._connection = psycopg.connect(url, autocommit=True)
        self._connection.execute(f"LISTEN {POSITIONS_CHANNEL}")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            for notice in self._connection.notifies(timeout=0.2):
                now = time.perf_counter()
                name, *_, position = notice.payload.split(":")  # name:...:position
                self.arrivals.setdefault(name, []).append((now, int(position)))

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._connection.close()

    def visible_at(self, name: str, position: int) -> float | None:
        """When `name` first announced a position at or past `position`."""
        arrivals = self.arrivals.get(name, [])
        highest: list[int] = []
        for _, announced in arrivals:
            highest.append(max(announced, highest[-1]) if highest else announced)
        index = bisect.bisect_left(highest, position)
        return arrivals[index][0] if index < len(arrivals) else None


@contextmanager
def one_worker(url: str, broker_url: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKSTORE_")}
    env.update(
        BOOKSTORE_ENV="test",
        BOOKSTORE_SECRET_KEY=SECRET,
        BOOKSTORE_DATABASE_URL=url,
        BOOKSTORE_BROKER_URL=broker_url,
        PYTHONPATH=str(REPO),
    )
    celery = str(Path(sys.executable).parent / "celery")
    process = subprocess.Popen(
        [
            celery,
            "-A",
            "workers.celery_app",
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


@dataclass(frozen=True)
class Lag:
    issued: int
    commands: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    missing: int


def run_commands(container: Container, seconds: float) -> tuple[int, list[tuple[float, str, int]]]:
    """Mixed commands at a steady rate; each stamped at commit with the projection it feeds."""
    app = container.write_app
    ctx = CommandContext.system("bench-lag")
    rng = random.Random(7)
    stamps: list[tuple[float, int]] = []
    app.commit_listeners.insert(0, lambda position: stamps.append((time.perf_counter(), position)))
    books = [
        app.register_book(
            ctx,
            title=f"Lag {n}",
            author="Bench",
            isbn=random_isbn13(rng),
            price="9.99",
            stock=1_000_000,
            category="bench",
        ).id
        for n in range(50)
    ]
    buyers = [
        app.register_user(
            ctx, email=f"lag-{n}-{uuid.uuid4().hex[:6]}@example.com", password_hash="x"
        ).id
        for n in range(20)
    ]
    stamps.clear()
    commands: list[tuple[float, str, int]] = []
    interval = 1.0 / COMMANDS_PER_SECOND
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        due = start + n * interval
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        roll = rng.random()
        if roll < 0.7:
            name = "book_listing"
            app.restock_book(ctx, rng.choice(books), 1)
        elif roll < 0.85:
            name = "user_directory"
            app.register_user(ctx, email=f"u-{uuid.uuid4().hex}@example.com", password_hash="x")
        else:
            name = "order_history"
            buyer = rng.choice(buyers)
            app.add_to_cart(ctx, buyer, rng.choice(books), 1)
            n += 1  # the cart command counts towards the rate too
            app.place_order(ctx, buyer)
        committed_at, position = stamps[-1]
        commands.append((committed_at, name, position))
        n += 1
    return n, commands


def lag_bench(seconds: float) -> Lag:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    try:
        with fresh_database("bench_projections") as url:
            settings = settings_for(url, broker_url=REDIS_URL)
            bootstrap.migrate(settings)
            container = bootstrap.build(settings)
            recorder = NotifyRecorder(url)
            try:
                with one_worker(url, REDIS_URL):
                    warm = container.write_app.register_book(
                        CommandContext.system("bench-warm"),
                        title="Warm",
                        author="Bench",
                        isbn=random_isbn13(random.Random(1)),
                        price="1.00",
                        stock=1,
                        category="b",
                    )
                    if not container.wait_for_position("book_listing", warm.position, 60):
                        raise RuntimeError("the worker did not start")
                    started = time.perf_counter()
                    issued, commands = run_commands(container, seconds)
                    elapsed = time.perf_counter() - started
                    last = max(position for _, _, position in commands)
                    for name in ("book_listing", "user_directory", "order_history"):
                        container.wait_for_position(name, last, 30)
                    time.sleep(0.2)
            finally:
                recorder.close()
                container.close()
    finally:
        client.flushdb()
        client.close()
    lags: list[float] = []
    missing = 0
    for committed_at, name, position in commands:
        visible = recorder.visible_at(name, position)
        if visible is None:
            missing += 1
        else:
            lags.append(max(0.0, visible - committed_at) * 1000)
    cuts = statistics.quantiles(lags, n=100)
    return Lag(
        issued=issued,
        commands=len(commands),
        seconds=elapsed,
        p50_ms=statistics.median(lags),
        p99_ms=cuts[98],
        max_ms=max(lags),
        missing=missing,
    )


def main(
    runs: int = 3,
    scale: float = 1.0,
    lag_seconds: float = 30.0,
    parts: tuple[str, ...] = ("throughput", "lag"),
    events_per_book: tuple[int, ...] = (1, 5),
) -> None:
    events = max(1000, int(EVENTS * scale))
    if "throughput" in parts:
        throughput(events, runs, events_per_book)
    if "lag" in parts:
        lag = lag_bench(lag_seconds * max(scale, 0.1))
        print(
            f"Projection lag, one Celery worker (prefork, concurrency 1) on Redis, "
            f"{lag.issued / lag.seconds:.0f} commands/s for {lag.seconds:.0f} s "
            f"({lag.issued} commands; {lag.commands} measured: 70% restock, "
            "15% register user, 15% place order, each after an add-to-cart):"
        )
        print(
            f"commit -> row visible: p50 {lag.p50_ms:.1f} ms, p99 {lag.p99_ms:.1f} ms, "
            f"max {lag.max_ms:.1f} ms" + (f", {lag.missing} never seen" if lag.missing else "")
        )


def throughput(events: int, runs: int, events_per_book: tuple[int, ...]) -> None:
    print(f"# Projections (PostgreSQL), {events:,} events, median of {runs} runs")
    print()
    print(
        "| workload | batch size | catch_up events/s | rows | raw batched INSERT rows/s | ratio |"
    )
    print("|---|---|---|---|---|---|")
    for per_book in events_per_book:
        for result in catch_up_bench(events, per_book, runs):
            ratio = result.events_per_second / result.raw_rows_per_second
            print(
                f"| {per_book} event(s) per book | {result.batch_size} "
                f"| {result.events_per_second:,.0f} | {result.rows:,} "
                f"| {result.raw_rows_per_second:,.0f} | {ratio:.2f} |",
                flush=True,
            )
    print()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.projections", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the work (0.1 = quick)")
    parser.add_argument("--lag-seconds", type=float, default=30.0, help="length of the lag run")
    parser.add_argument(
        "--part", choices=("throughput", "lag"), action="append", help="only this part"
    )
    parser.add_argument(
        "--events-per-book", type=int, action="append", help="throughput workloads (1, 5)"
    )
    args = parser.parse_args()
    main(
        runs=args.runs,
        scale=args.scale,
        lag_seconds=args.lag_seconds,
        parts=tuple(args.part or ("throughput", "lag")),
        events_per_book=tuple(args.events_per_book or (1, 5)),
    )

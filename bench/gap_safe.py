"""Before and after the commit watermark, side by side in one run: `python -m bench.gap_safe`.

- **before**: every insert takes the library's table lock (`LOCK TABLE ... IN EXCLUSIVE
  MODE`), the events table has no `tx_id`, projections read in store-position order;
- **after**: lock-free inserts (the library's `es_insert_events_uuid`), the `tx_id`
  column and its index, projections reading below the commit watermark.

Measured, each a median of `--runs` runs, the modes interleaved run by run (this machine is
shared and noisy: ratios within one run are what to compare), every run in a fresh
database:

1. the library alone: saves/s at 1 and 4 threads, one save = a new aggregate with two
   events, with the table lock, without it, and without it but with the `tx_id` column;
2. `Bookstore.place_order`: orders/s at 1 and 4 threads, before and after, with the share
   of a core the process kept busy (threads share one interpreter lock), and with 4
   processes (no shared interpreter lock: the database's part shows). Both modes run
   today's write model and recorder (`adapters/event_recorder.py`): only the insert lock
   differs, so a speed-up of the write model's own work lifts both;
   ("filed") The issue's target compares with "today's" `place_order`, the code when it
   was filed: `FILED_REVISION`, checked out into a throw-away git worktree and run by its
   own harness in its own process, interleaved run by run with today's production wiring;
3. catch-up: events/s of `Runner.catch_up_fully` into book_listing, both readers over the
   same stored events;
4. lag: commit -> projection NOTIFY past the command's event, at 100 commands/s, one
   Celery worker on Redis (database 15, flushed): p50 and p99;
5. `POST /orders` over HTTP at 32 connections, each alternating with an add to the cart:
   `uvicorn --factory bench.gap_safe:before_app` (or `after_app`), two workers, wrk.

`python -m bench.gap_safe [--runs N] [--scale X] [--lag-seconds S] [--only saves ...]`
"""

from __future__ import annotations

import argparse
import bisect
import multiprocessing
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import psycopg
import redis
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.postgres import PostgresApplicationRecorder
from fastapi import FastAPI
from sqlalchemy import text

from adapters.credentials import SqlCredentialStore
from adapters.engines import event_store_env, make_engine
from api.app import create_app
from bench.common import ADMIN_URL, BIN, free_port, fresh_database, running, server_env
from bench.gap_safe_worker import ID_ORDER_ENV
from bench.projections import SECRET, settings_for, store_books
from bench.projections import run_commands as mixed_commands
from bench.write_model import (
    CATALOGUE_SIZE,
    WARM_UP,
    CountingBookstore,
    Run,
    fill_carts,
    timed_threads,
)
from bookstore import bootstrap
from bookstore.bootstrap import Container
from bookstore.settings import Settings, get_settings
from projections.book_listing import BookListingProjection
from projections.event_log import EventLog, SerialLog, WatermarkLog
from projections.positions import serial_locator
from projections.runner import POSITIONS_CHANNEL, Runner, parse_payload
from read_model.tables import book_listing, projection_tracking
from read_model.tracking import LogPosition
from tests.factories import random_isbn13
from write_model.application import Bookstore
from write_model.context import CommandContext

THREAD_COUNTS = (1, 4)
SAVES_PER_THREAD = {1: 2000, 4: 800}
ORDERS_PER_THREAD = {1: 600, 4: 300}
CATCH_UP_EVENTS = 50_000
CATCH_UP_BATCH_SIZES = (500, 5000)
CATCH_UP_EVENTS_PER_BOOK = (1, 5)
REDIS_URL = os.environ.get("BOOKSTORE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
REPO = Path(__file__).resolve().parent.parent
PARTS = ("saves", "place_order", "filed", "catch_up", "lag", "http")
# The code as it was when the gap-safe issue was filed: the last commit before the commit
# watermark (table lock, that day's write model). Its own benchmark harness
# (`bench.write_model` of that revision: the same 20-book catalogue, carts of 1-2 books,
# 250 orders a thread) measures its `place_order`: the "today's".
FILED_REVISION = "fa916cc^"
FILED_SNIPPET = (
    "import sys; from bench.write_model import place_order_run as run; "
    "r = run(int(sys.argv[1]), float(sys.argv[2])); print(r.calls / r.seconds, r.conflicts)"
)

# The write-side revision ws0002's DDL, for tables of the benchmark's own applications.
WATERMARK_DDL = (
    "ALTER TABLE {table} ADD COLUMN tx_id xid8 NOT NULL DEFAULT pg_current_xact_id()",
    "CREATE INDEX ON {table} (tx_id, notification_id)",
)


@dataclass(frozen=True)
class Mode:
    """One way of writing and reading the log."""

    name: str
    insert_lock: bool
    watermark: bool


BEFORE = Mode("before (table lock, id order)", insert_lock=True, watermark=False)
AFTER = Mode("after (lock-free, watermark)", insert_lock=False, watermark=True)
MODES = (BEFORE, AFTER)
T = TypeVar("T")


def in_turn(choices: Sequence[T], run: int) -> Sequence[T]:
    """The choices forwards in even runs, backwards in odd ones: a machine getting busier
    or quieter during the benchmark favours neither."""
    return choices if run % 2 == 0 else choices[::-1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def execute(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement.encode())


# ---------------------------------------------------------------------------- databases


def prepare(url: str, mode: Mode) -> None:
    """`bookstore migrate`; the "before" mode then loses the `tx_id` column again."""
    bootstrap.migrate(settings_for(url))
    if not mode.watermark:
        execute(url, "ALTER TABLE bookstore_events DROP COLUMN tx_id")


def container_for(settings: Settings, mode: Mode) -> Container:
    """A wired process in `mode`: `bootstrap.build` itself for "after"."""
    if not mode.insert_lock:
        return bootstrap.build(settings)
    url = settings.resolved_event_store_url
    engine = make_engine(url, pool_size=settings.postgres_pool_size)
    write_app = Bookstore(
        env=event_store_env(
            url, create_table=False, pool_size=settings.postgres_pool_size, insert_lock=True
        ),
        credentials=SqlCredentialStore(engine),
    )
    container = Container(
        settings=settings,
        write_app=write_app,
        write_engine=engine,
        read_engine=engine,
        hasher=bootstrap.build_hasher(settings),
    )
    container.projections.runner.log = SerialLog(write_app.recorder)
    container.projections.waiter.locate = serial_locator
    return container


def before_app() -> FastAPI:
    """ASGI factory (`uvicorn --factory bench.gap_safe:before_app`): the locked mode."""
    return create_app(container_for(get_settings(), BEFORE))


def after_app() -> FastAPI:
    """ASGI factory: the production wiring, as `bookstore serve` runs it."""
    return create_app(container_for(get_settings(), AFTER))


# ---------------------------------------------------------------------------- 1. saves


class Pair(Aggregate):
    """A new aggregate with two events: what the issue's figures saved."""

    @event("Created")
    def __init__(self) -> None:
        pass

    @event("Touched")
    def touch(self) -> None:
        pass


class PairStore(Application[UUID]):
    name = "pairs"


def save_pair(app: PairStore) -> None:
    pair = Pair()
    pair.touch()
    app.save(pair)


@dataclass(frozen=True)
class SaveVariant:
    name: str
    insert_lock: bool
    column: bool


SAVE_VARIANTS = (
    SaveVariant("table lock", insert_lock=True, column=False),
    SaveVariant("no lock", insert_lock=False, column=False),
    SaveVariant("no lock + tx_id column", insert_lock=False, column=True),
)


def saves_run(variant: SaveVariant, threads: int, scale: float) -> Run:
    per_thread = max(1, int(SAVES_PER_THREAD[threads] * scale))
    with fresh_database("bench_gap_safe") as url:
        env = event_store_env(
            url, create_table=True, pool_size=threads + 2, insert_lock=variant.insert_lock
        )
        # The library's own recorder: the project's (adapters/event_recorder.py) inserts
        # differently, and these figures are the library's.
        env.pop("APPLICATION_RECORDER_TOPIC", None)
        app = PairStore(env=env)
        try:
            if variant.column:
                execute(url, *(ddl.format(table="pairs_events") for ddl in WATERMARK_DDL))
            for _ in range(20):
                save_pair(app)
            work: list[list[Callable[[], Any]]] = [
                [partial(save_pair, app)] * per_thread for _ in range(threads)
            ]
            seconds, latencies = timed_threads(work)
        finally:
            app.close()
    return Run(calls=per_thread * threads, seconds=seconds, latencies=latencies)


# ---------------------------------------------------------------------------- 2. place_order


class CountingStore(CountingBookstore):
    """`bench.write_model`'s conflict-counting application, on the bookstore's own tables
    (the library names an application's tables after its class)."""

    name = "bookstore"


@dataclass(frozen=True)
class OrdersRun:
    """A timed run of place_order, and the share of one core this process used meanwhile
    (near 1.0 with threads: the interpreter lock, not the database, sets the pace)."""

    run: Run
    cpu_share: float


def open_shop(url: str, mode: Mode, buyers: int, groups: int) -> list[list[UUID]]:
    """A catalogue of CATALOGUE_SIZE books and `groups` lists of `buyers` users, each with a
    cart of 1-2 books (not timed), after WARM_UP orders."""
    rng = random.Random(groups)
    ctx = CommandContext.system("bench")
    prepare(url, mode)
    app = CountingStore(event_store_env(url, create_table=False, insert_lock=mode.insert_lock))
    try:
        catalogue = [
            app.register_book(
                ctx,
                title=f"Bench book {n}",
                author="Bench",
                isbn=random_isbn13(rng),
                price="12.34",
                stock=1_000_000,
                category="bench",
            ).id
            for n in range(CATALOGUE_SIZE)
        ]
        for user_id in fill_carts(app, catalogue, WARM_UP, rng):
            app.place_order(ctx, user_id)
        return [fill_carts(app, catalogue, buyers, rng) for _ in range(groups)]
    finally:
        app.close()


def process_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def place_order_run(mode: Mode, threads: int, scale: float) -> OrdersRun:
    per_thread = max(1, int(ORDERS_PER_THREAD[threads] * scale))
    ctx = CommandContext.system("bench")
    with fresh_database("bench_gap_safe") as url:
        shoppers = open_shop(url, mode, per_thread, threads)
        app = CountingStore(
            event_store_env(
                url, create_table=False, pool_size=threads + 2, insert_lock=mode.insert_lock
            )
        )
        try:
            work: list[list[Callable[[], Any]]] = [
                [partial(app.place_order, ctx, user_id) for user_id in users] for users in shoppers
            ]
            cpu = process_cpu_seconds()
            seconds, latencies = timed_threads(work)
            cpu = process_cpu_seconds() - cpu
        finally:
            app.close()
    run = Run(per_thread * threads, seconds, latencies, conflicts=app.conflicts)
    return OrdersRun(run, cpu / seconds)


def order_worker(
    url: str, insert_lock: bool, users: list[UUID], start: Barrier, results: Queue[Any]
) -> None:
    """One process of `place_order_processes`: its own application, its own buyers."""
    ctx = CommandContext.system("bench")
    app = CountingStore(
        event_store_env(url, create_table=False, pool_size=2, insert_lock=insert_lock)
    )
    latencies: list[float] = []
    try:
        app.place_order(ctx, users[0])  # connections and caches warm before the clock
        start.wait(timeout=120)
        for user_id in users[1:]:
            began = time.perf_counter()
            app.place_order(ctx, user_id)
            latencies.append(time.perf_counter() - began)
    finally:
        app.close()
    results.put((app.conflicts, latencies))


def place_order_processes(mode: Mode, processes: int, scale: float) -> OrdersRun:
    """`processes` processes placing orders at once: no interpreter lock shared."""
    per_process = max(2, int(ORDERS_PER_THREAD[processes] * scale))
    context = multiprocessing.get_context("spawn")
    with fresh_database("bench_gap_safe") as url:
        shoppers = open_shop(url, mode, per_process + 1, processes)
        start = context.Barrier(processes + 1)
        results: Queue[Any] = context.Queue()
        workers = [
            context.Process(
                target=order_worker, args=(url, mode.insert_lock, users, start, results)
            )
            for users in shoppers
        ]
        for worker in workers:
            worker.start()
        start.wait(timeout=120)
        began = time.perf_counter()
        outcomes = [results.get(timeout=600) for _ in workers]
        seconds = time.perf_counter() - began
        for worker in workers:
            worker.join(timeout=60)
    conflicts = sum(conflicts for conflicts, _ in outcomes)
    latencies = [latency for _, per_worker in outcomes for latency in per_worker]
    return OrdersRun(Run(per_process * processes, seconds, latencies, conflicts), float("nan"))


# ---------------------------------------------------------------------------- 3. catch-up


def catch_up_rates(
    events: int, per_book: int, batch_size: int, runs: int
) -> dict[Mode, list[float]]:
    """Both readers over the same stored events (written by one writer, so both orders
    agree), alternating run by run."""
    rates: dict[Mode, list[float]] = {mode: [] for mode in MODES}
    with fresh_database("bench_gap_safe") as url:
        prepare(url, AFTER)
        container = bootstrap.build(settings_for(url))
        try:
            app = container.write_app
            store_books(app, events, per_book, random.Random(per_book))
            stored = app.head()
            recorder = app.recorder
            assert isinstance(recorder, PostgresApplicationRecorder)
            readers: dict[Mode, EventLog] = {
                BEFORE: SerialLog(recorder),
                AFTER: WatermarkLog(recorder),
            }
            for index in range(runs):
                for mode in in_turn(MODES, index):
                    # TRUNCATE, not DELETE: dead rows left by one run would slow the next.
                    with container.read_engine.begin() as connection:
                        connection.execute(
                            text(f"TRUNCATE {book_listing.name}, {projection_tracking.name}")
                        )
                    runner = Runner(
                        app,
                        container.read_engine,
                        [BookListingProjection()],
                        event_log=readers[mode],
                    )
                    started = time.perf_counter()
                    result = runner.catch_up_fully("book_listing", batch_size=batch_size)
                    elapsed = time.perf_counter() - started
                    if not result.caught_up or result.applied != stored:
                        raise RuntimeError(f"{mode.name}: catch-up did not finish: {result}")
                    rates[mode].append(stored / elapsed)
        finally:
            container.close()
    return rates


# ---------------------------------------------------------------------------- 4. lag


class NotifyRecorder:
    """Stamps every position NOTIFY as it arrives: the moment rows became visible."""

    def __init__(self, url: str) -> None:
        self.arrivals: dict[str, list[tuple[float, LogPosition]]] = {}
        self._stopping = threading.Event()
        self._connection = psycopg.connect(url, autocommit=True)
        self._connection.execute(f"LISTEN {POSITIONS_CHANNEL}")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            for notice in self._connection.notifies(timeout=0.2):
                now = time.perf_counter()
                parsed = parse_payload(notice.payload)
                if parsed is not None:
                    name, log_position, _ = parsed
                    self.arrivals.setdefault(name, []).append((now, log_position))

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._connection.close()

    def visible_at(self, name: str, target: LogPosition) -> float | None:
        """When `name` first announced a log position at or past `target`."""
        arrivals = self.arrivals.get(name, [])
        furthest: list[LogPosition] = []
        for _, announced in arrivals:
            furthest.append(max(announced, furthest[-1]) if furthest else announced)
        index = bisect.bisect_left(furthest, target)
        return arrivals[index][0] if index < len(arrivals) else None


@contextmanager
def one_worker(url: str, mode: Mode) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKSTORE_")}
    env.update(
        BOOKSTORE_ENV="test",
        BOOKSTORE_SECRET_KEY=SECRET,
        BOOKSTORE_DATABASE_URL=url,
        BOOKSTORE_BROKER_URL=REDIS_URL,
        PYTHONPATH=str(REPO),
        **{ID_ORDER_ENV: "0" if mode.watermark else "1"},
    )
    celery = str(Path(sys.executable).parent / "celery")
    process = subprocess.Popen(
        [
            celery,
            "-A",
            "bench.gap_safe_worker",
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
    rate: float
    p50_ms: float
    p99_ms: float
    missing: int


def targets(url: str, mode: Mode, positions: list[int]) -> dict[int, LogPosition]:
    """The log position each command's event must be passed at, in `mode`."""
    if not mode.watermark:
        return {position: LogPosition(0, position) for position in positions}
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT notification_id, tx_id::text FROM bookstore_events"
            " WHERE notification_id = ANY(%s)",
            (positions,),
        ).fetchall()
    return {int(n): LogPosition(int(tx), int(n)) for n, tx in rows}


def lag_run(mode: Mode, seconds: float) -> Lag:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    try:
        with fresh_database("bench_gap_safe") as url:
            prepare(url, mode)
            container = container_for(settings_for(url, broker_url=REDIS_URL), mode)
            recorder = NotifyRecorder(url)
            try:
                with one_worker(url, mode):
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
                    issued, commands = mixed_commands(container, seconds)
                    elapsed = time.perf_counter() - started
                    last = max(position for _, _, position in commands)
                    for name in ("book_listing", "user_directory", "order_history"):
                        container.wait_for_position(name, last, 30)
                    time.sleep(0.2)
                wanted = targets(url, mode, [position for _, _, position in commands])
            finally:
                recorder.close()
                container.close()
    finally:
        client.flushdb()
        client.close()
    lags: list[float] = []
    missing = 0
    for committed_at, name, position in commands:
        visible = recorder.visible_at(name, wanted[position])
        if visible is None:
            missing += 1
        else:
            lags.append(max(0.0, visible - committed_at) * 1000)
    cuts = statistics.quantiles(lags, n=100)
    return Lag(issued / elapsed, statistics.median(lags), cuts[98], missing)


# ---------------------------------------------------------------------------- 5. HTTP


HTTP_BOOKS = 2000
HTTP_SECONDS = 15


def http_orders(mode: Mode, connections: int = 32) -> float:
    """`POST /orders` orders/s over HTTP at `connections` connections, in `mode`.

    `uvicorn --factory bench.gap_safe:before_app` (or `after_app`, the production wiring)
    with two workers, projections in-process as `bookstore serve` runs them, on a fresh
    database of 2,000 books; `connections` customers, each a wrk connection alternating
    `POST /cart/items` and `POST /orders` (`bench.http_api`'s script and load generator).
    """
    from bench import http_api

    factory = "before_app" if mode.insert_lock else "after_app"
    with fresh_database("bench_gap_http") as url:
        prepare(url, mode)
        http_api.load_catalogue(url, HTTP_BOOKS)
        with psycopg.connect(url) as connection:  # book_listing is empty: nothing caught up
            found = connection.execute(
                "SELECT originator_id FROM bookstore_events"
                " WHERE topic = 'write_model.book:Book.Registered'"
            ).fetchall()
        books = [row[0] for row in found]
        port = free_port()
        command = [str(BIN / "uvicorn"), "--factory", f"bench.gap_safe:{factory}"]
        command += ["--port", str(port), "--workers", str(http_api.WORKERS)]
        command += ["--log-level", "warning", "--no-access-log"]
        env = server_env(url, BOOKSTORE_REGISTER_MAX_PER_ADDRESS="1000")
        base = f"http://127.0.0.1:{port}"
        with running(command, env, base + "/health"):
            tokens = http_api.customers(base, connections)
            script = http_api.write_script(tokens, books, "orders")
            result = http_api.wrk(base, seconds=HTTP_SECONDS, threads=connections, script=script)
    print(f"  {mode.name}: {result.extra}", flush=True)
    return float(result.extra.get("orders_per_s", 0.0))


# ---------------------------------------------------------------------------- report


def row(what: str, unit: str, before: float, after: float, target: str = "") -> str:
    ratio = after / before if before else float("nan")
    return f"| {what} | {unit} | {before:,.0f} | {after:,.0f} | {ratio:.2f} | {target} |"


def measure_saves(runs: int, scale: float) -> None:
    print("## The library alone: saves/s (a new aggregate, two events, per save)", flush=True)
    figures: dict[tuple[str, int], list[float]] = {}
    for index in range(runs):
        for threads in THREAD_COUNTS:
            for variant in in_turn(SAVE_VARIANTS, index):
                rate = saves_run(variant, threads, scale).rate
                figures.setdefault((variant.name, threads), []).append(rate)
                print(f"  {variant.name}, {threads} thread(s): {rate:,.0f} saves/s", flush=True)
    print()
    print("| threads | table lock | no lock | no lock + tx_id | no lock / lock | tx_id / no lock |")
    print("|---|---|---|---|---|---|")
    for threads in THREAD_COUNTS:
        lock, free, column = (median(figures[(v.name, threads)]) for v in SAVE_VARIANTS)
        print(
            f"| {threads} | {lock:,.0f} | {free:,.0f} | {column:,.0f} | {free / lock:.2f} "
            f"| {column / free:.2f} (target >= 0.9) |"
        )
    print(flush=True)


def measure_place_order(runs: int, scale: float) -> None:
    print("## Bookstore.place_order, orders/s", flush=True)
    ways: list[tuple[str, int, Callable[[Mode, int, float], OrdersRun]]] = [
        *((f"{n} thread(s)", n, place_order_run) for n in THREAD_COUNTS),
        ("4 processes", 4, place_order_processes),
    ]
    figures: dict[tuple[Mode, str], list[OrdersRun]] = {}
    for index in range(runs):
        for label, count, way in ways:
            for mode in in_turn(MODES, index):
                outcome = way(mode, count, scale)
                figures.setdefault((mode, label), []).append(outcome)
                print(
                    f"  {mode.name}, {label}: {outcome.run.rate:,.0f} orders/s "
                    f"({outcome.run.conflicts} conflicts retried"
                    + (
                        f", {outcome.cpu_share:.2f} of a core busy"
                        if outcome.cpu_share == outcome.cpu_share
                        else ""
                    )
                    + ")",
                    flush=True,
                )
    print()
    print("| measurement | unit | before | after | ratio | target |")
    print("|---|---|---|---|---|---|")
    for label, _, _ in ways:
        before = median([o.run.rate for o in figures[(BEFORE, label)]])
        after = median([o.run.rate for o in figures[(AFTER, label)]])
        target = ">= 2 x before" if label == "4 thread(s)" else ""
        print(row(f"place_order, {label}", "orders/s", before, after, target))
        p50 = {
            mode: 1000 * median([x for o in figures[(mode, label)] for x in o.run.latencies])
            for mode in MODES
        }
        print(f"| place_order p50, {label} | ms | {p50[BEFORE]:.1f} | {p50[AFTER]:.1f} | | |")
    print(flush=True)


def measure_catch_up(runs: int, scale: float) -> None:
    events = max(1000, int(CATCH_UP_EVENTS * scale))
    print(f"## Catch-up into book_listing, {events:,} events, events/s", flush=True)
    lines = []
    for per_book in CATCH_UP_EVENTS_PER_BOOK:
        for batch_size in CATCH_UP_BATCH_SIZES:
            rates = catch_up_rates(events, per_book, batch_size, runs)
            print(
                f"  {per_book} event(s) per book, batch {batch_size}: "
                + ", ".join(f"{m.name} {[round(r) for r in rates[m]]}" for m in MODES),
                flush=True,
            )
            lines.append(
                row(
                    f"catch-up, {per_book} event(s)/book, batch {batch_size}",
                    "events/s",
                    median(rates[BEFORE]),
                    median(rates[AFTER]),
                    "no worse",
                )
            )
    print()
    print("| measurement | unit | before | after | ratio | target |")
    print("|---|---|---|---|---|---|")
    print("\n".join(lines))
    print(flush=True)


def measure_lag(runs: int, seconds: float) -> None:
    print(
        f"## Projection lag, 100 commands/s for {seconds:.0f} s, one Celery worker "
        "(commit -> NOTIFY past the command's event)",
        flush=True,
    )
    lags: dict[Mode, list[Lag]] = {mode: [] for mode in MODES}
    for index in range(runs):
        for mode in in_turn(MODES, index):
            lag = lag_run(mode, seconds)
            lags[mode].append(lag)
            print(
                f"  {mode.name}: {lag.rate:.0f} commands/s, p50 {lag.p50_ms:.1f} ms, "
                f"p99 {lag.p99_ms:.1f} ms" + (f", {lag.missing} never seen" if lag.missing else ""),
                flush=True,
            )
    print()
    print("| measurement | unit | before | after | ratio | target |")
    print("|---|---|---|---|---|---|")
    for label, pick in (("lag p50", "p50_ms"), ("lag p99", "p99_ms")):
        before = median([getattr(lag, pick) for lag in lags[BEFORE]])
        after = median([getattr(lag, pick) for lag in lags[AFTER]])
        print(f"| {label} | ms | {before:.1f} | {after:.1f} | {after / before:.2f} | no worse |")
    print(flush=True)


def measure_http(runs: int) -> None:
    figures: dict[Mode, list[float]] = {mode: [] for mode in MODES}
    for run in range(runs):
        for mode in in_turn(MODES, run):
            figures[mode].append(http_orders(mode))
    before, after = median(figures[BEFORE]), median(figures[AFTER])
    print("## POST /orders over HTTP, 32 connections (each alternating with an add)")
    print("| measurement | unit | before | after | ratio | target |")
    print("|---|---|---|---|---|---|")
    print(row("POST /orders, 32 connections", "orders/s", before, after))


@contextmanager
def filed_tree() -> Iterator[Path | None]:
    """A throw-away git worktree of `FILED_REVISION` (None, said why, if git cannot)."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-filed-"))
    tree = scratch / "tree"
    add = ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), FILED_REVISION]
    try:
        subprocess.run(add, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        print(f"  cannot check out {FILED_REVISION} (needs a full clone): {detail.strip()}")
        shutil.rmtree(scratch, ignore_errors=True)
        yield None
        return
    try:
        yield tree
    finally:
        remove = ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)]
        subprocess.run(remove, check=False, capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


def filed_rate(tree: Path, threads: int, scale: float) -> float:
    """`place_order`s/s of the filed revision's code, run by its own harness, its own process."""
    done = subprocess.run(
        [sys.executable, "-c", FILED_SNIPPET, str(threads), str(scale)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the filed revision's harness failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.split()[-2])


def measure_filed(runs: int, scale: float) -> None:
    """`place_order` now (the production wiring: lock-free, watermark) against the code when
    the issue was filed, interleaved run by run: the issue's target is twice "today's"."""
    print(f"## place_order, orders/s: the code at {FILED_REVISION} (filed) -> now", flush=True)
    with filed_tree() as tree:
        if tree is None:
            return
        figures: dict[tuple[str, int], list[float]] = {}
        for threads in THREAD_COUNTS:
            for index in range(runs):
                for which in in_turn(("filed", "now"), index):
                    rate = (
                        filed_rate(tree, threads, scale)
                        if which == "filed"
                        else place_order_run(AFTER, threads, scale).run.rate
                    )
                    figures.setdefault((which, threads), []).append(rate)
                    print(f"  {which}, {threads} thread(s): {rate:,.0f} orders/s", flush=True)
    print()
    print("| measurement | unit | filed | now | ratio | target |")
    print("|---|---|---|---|---|---|")
    for threads in THREAD_COUNTS:
        target = ">= 2 x filed" if threads == 4 else ""
        then, now = median(figures[("filed", threads)]), median(figures[("now", threads)])
        print(row(f"place_order, {threads} thread(s)", "orders/s", then, now, target))
    print(flush=True)


MEASUREMENTS: dict[str, Callable[[argparse.Namespace], None]] = {
    "saves": lambda args: measure_saves(args.runs, args.scale),
    "place_order": lambda args: measure_place_order(args.runs, args.scale),
    "filed": lambda args: measure_filed(args.runs, args.scale),
    "catch_up": lambda args: measure_catch_up(args.runs, args.scale),
    "lag": lambda args: measure_lag(args.runs, args.lag_seconds),
    "http": lambda args: measure_http(args.runs),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gap_safe", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the work (0.1 quick)")
    parser.add_argument("--lag-seconds", type=float, default=20.0, help="length of a lag run")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    args: Any = parser.parse_args(argv)
    print(
        f"# Gap-safe log tailing, before and after, PostgreSQL "
        f"({ADMIN_URL.rpartition('@')[2]}), median of {args.runs} runs\n",
        flush=True,
    )
    started = time.perf_counter()
    for part in args.only:
        MEASUREMENTS[part](args)
    print(f"(whole benchmark: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()

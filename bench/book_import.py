"""A 100,000-row catalogue import over HTTP against PostgreSQL, beside COPY of the same rows.

Figure: `POST /books/import` of a CSV file of N new books (realistic rows from
`bookstore.demo_catalogue`), streamed from disk by httpx to a real `bookstore serve`
process (one uvicorn process, so its memory is the server's), on a fresh PostgreSQL
database: seconds, rows/s, and the server's resident memory (sampled every 10 ms from
/proc) before and at its peak during the request. Then the same file again: a no-op.

Memory flat means: the peak during a 100,000-row import is no higher than during an import
a fifth of its size, beyond the ~100 bytes a row the duplicate-ISBN check keeps. So a
smaller file of other books is imported first, and both peaks are printed.

Baselines, in the same run: `COPY` of the same CSV bytes into a bare table of the same six
columns (no key, no index), the floor of getting these rows into PostgreSQL; and the event
store's own `Application.save` of the same books and ISBN keys, 500 books a save, in a
database of its own: the floor of getting them into the event log through the library.

The server runs as the README's production setup does (`BOOKSTORE_BROKER_URL` set, so the
projections run in Celery workers, none started here): what is measured is the import, not
the `book_listing` catch-up, which bench.projections measures. `--embedded` runs them in
the server process instead, as `make run` does.

Run: `.venv/bin/python -m bench.book_import [--rows N] [--embedded]`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from bench.common import BIN, free_port, fresh_database, running, server_env
from bookstore import bootstrap
from bookstore.demo_catalogue import demo_books
from bookstore.settings import Settings
from write_model.book import Book
from write_model.context import CommandContext
from write_model.key_index import KeyIndex
from write_model.values import Role

SAVE_BATCH = 500
COLUMNS = ("title", "author", "isbn", "price", "stock", "category")
PASSWORD = "bench password 1234"
REDIS_URL = os.environ.get("BOOKSTORE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


def write_csv(path: Path, count: int, *, skip: int = 0) -> int:
    """`count` books (after the first `skip` of the seeded catalogue) as CSV; bytes written."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for n, book in enumerate(demo_books(skip + count, seed=1)):
            if n >= skip:
                writer.writerow(
                    [book.title, book.author, book.isbn, book.price, book.stock, book.category]
                )
    return path.stat().st_size


def copy_baseline(url: str, path: Path) -> float:
    """Seconds to COPY the file into a bare table of the same columns (created first)."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE bare_books (title text, author text, isbn text, price numeric(8, 2),"
            " stock integer, category text)"
        )
        began = time.perf_counter()
        statement = "COPY bare_books FROM STDIN (FORMAT csv, HEADER true)"
        with (
            connection.transaction(),
            connection.cursor() as cursor,
            cursor.copy(statement) as copy,
            path.open("rb") as data,
        ):
            while chunk := data.read(1024 * 1024):
                copy.write(chunk)
        took = time.perf_counter() - began
        connection.execute("DROP TABLE bare_books")
    return took


def library_floor(path: Path) -> float:
    """Seconds for the event store alone to save the same books, in a database of its own.

    The rows are read and turned into `Book` and ISBN `KeyIndex` aggregates first (not
    timed), then saved 500 books (1,000 events) to an `Application.save`, as the import's
    batches are: what the library costs, with no HTTP, parsing, checking or loading.
    """
    with fresh_database("bench_import_floor") as url:
        settings = Settings(database_url=url, env="development")
        bootstrap.migrate(settings)
        container = bootstrap.build(settings)
        try:
            with path.open(encoding="utf-8", newline="") as data:
                books = [Book.register(**_typed(row)) for row in csv.DictReader(data)]
            batches = [books[i : i + SAVE_BATCH] for i in range(0, len(books), SAVE_BATCH)]
            app = container.write_app
            began = time.perf_counter()
            for batch in batches:
                indexes = [KeyIndex(kind="isbn", key=b.isbn, owner_id=b.id) for b in batch]
                app.save(*batch, *indexes)
            return time.perf_counter() - began
        finally:
            container.close()


def _typed(row: dict[str, str]) -> dict[str, Any]:
    return {**row, "stock": int(row["stock"])}


def make_staff(url: str) -> str:
    """A staff member, made through the write model; their email."""
    settings = Settings(
        database_url=url,
        env="development",
        password_hash_time_cost=1,
        password_hash_memory_kib=8192,
        password_hash_parallelism=1,
    )
    bootstrap.migrate(settings)
    container = bootstrap.build(settings)
    try:
        email = "staff@bench.example.com"
        app = container.write_app
        ctx = CommandContext.system("bench")
        user = app.register_user(ctx, email=email, password_hash=container.hasher.hash(PASSWORD))
        app.change_role(ctx, user.id, Role.STAFF)
    finally:
        container.close()
    return email


@contextlib.contextmanager
def server(env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """`bookstore serve` (one process), its base URL and pid."""
    port = free_port()
    command = [str(BIN / "bookstore"), "serve", "--port", str(port), "--workers", "1"]
    command.append("--no-auto-migrate")
    base = f"http://127.0.0.1:{port}"
    with running(command, env, base + "/health") as pid:
        yield base, pid


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PeakRss:
    """Samples a process's resident memory every 10 ms while in use; `peak` in MiB."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            self._stop.wait(0.01)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib(self.pid))


@dataclass
class Run:
    rows: int
    seconds: float
    rss_before: float
    rss_peak: float
    report: dict[str, Any]


@contextlib.contextmanager
def profiled(pid: int, output: Path | None) -> Iterator[None]:
    """py-spy (if asked for and installed) sampling the server while the block runs."""
    if output is None:
        yield
        return
    command = [str(BIN / "py-spy"), "record", "--pid", str(pid), "--rate", "200"]
    command += ["--format", "raw", "--output", str(output), "--nonblocking", "--idle"]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)  # attached before the request starts
    try:
        yield
    finally:
        spy.send_signal(2)  # SIGINT: py-spy writes what it has
        spy.wait(60)


def summarise_profile(path: Path, top: int = 30) -> None:
    """Where the import's wall-clock time went, waits included (py-spy `--idle`).

    Per thread that worked on the import (the one reading and checking rows, and the
    ones applying batches): the share of its samples under each function (inclusive).
    """
    threads: dict[str, dict[str, int]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if "import_batch" in stack:
            role = "applying batches"
        elif "_run_import" in stack:
            role = "reading and checking rows"
        else:
            continue
        inclusive = threads.setdefault(role, {})
        inclusive[""] = inclusive.get("", 0) + int(count)
        for frame in set(frames[1:]):
            name = frame.split(" (")[0]
            inclusive[name] = inclusive.get(name, 0) + int(count)
    for role, inclusive in threads.items():
        total = inclusive.pop("")
        print(f"  profile, thread(s) {role}: {total} samples (waits included); inclusive:")
        for frame, samples in sorted(inclusive.items(), key=lambda item: -item[1])[:top]:
            print(f"    {100 * samples / total:5.1f}%  {frame}")


def post_file(base: str, token: str, path: Path, pid: int, rows: int) -> Run:
    before = rss_mib(pid)
    with PeakRss(pid) as peak, path.open("rb") as body:
        began = time.perf_counter()
        response = httpx.post(
            base + "/books/import",
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
            timeout=600,
        )
        took = time.perf_counter() - began
    if response.status_code != 200:
        raise RuntimeError(f"import answered {response.status_code}: {response.text[:500]}")
    return Run(rows, took, before, peak.peak, response.json())


def login(base: str, email: str) -> str:
    response = httpx.post(base + "/auth/login", json={"email": email, "password": PASSWORD})
    response.raise_for_status()
    return str(response.json()["access_token"])


def flush_broker() -> None:
    with contextlib.suppress(redis.RedisError):
        redis.Redis.from_url(REDIS_URL).flushdb()


def per_row(seconds: float, rows: int) -> float:
    return seconds / rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.book_import", description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the big import")
    parser.add_argument("--embedded", action="store_true", help="projections in the server process")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the server during the big import into this file"
    )
    args = parser.parse_args(argv)
    small = max(1, args.rows // 5)
    with tempfile.TemporaryDirectory() as folder, fresh_database("bench_import") as url:
        big_file, small_file = Path(folder) / "big.csv", Path(folder) / "small.csv"
        size = write_csv(big_file, args.rows)
        write_csv(small_file, small, skip=args.rows)
        copy_seconds = copy_baseline(url, big_file)
        floor_seconds = library_floor(big_file)
        email = make_staff(url)
        flush_broker()
        try:
            with server(server_env(url, broker_url=None if args.embedded else REDIS_URL)) as (
                base,
                pid,
            ):
                token = login(base, email)
                first = post_file(base, token, small_file, pid, small)
                with profiled(pid, args.profile):
                    big = post_file(base, token, big_file, pid, args.rows)
                again = post_file(base, token, big_file, pid, args.rows)
        finally:
            flush_broker()
    mode = "embedded projections" if args.embedded else "projections in workers (none running)"
    print(f"book import over HTTP, PostgreSQL, `bookstore serve` 1 process, {mode}")
    print(f"file: {args.rows:,} rows, {size / 1e6:.1f} MB of CSV")
    print(
        f"  baseline COPY into a bare table: {copy_seconds:6.2f} s "
        f"({args.rows / copy_seconds:,.0f} rows/s)"
    )
    print(
        f"  baseline eventsourcing save of the same books, 500 a save (no HTTP, parsing, "
        f"checks or loads): {floor_seconds:6.2f} s ({args.rows / floor_seconds:,.0f} rows/s)"
    )
    for label, run in (
        (f"import {small:,} new rows", first),
        (f"import {args.rows:,} new rows", big),
        (f"import the same {args.rows:,} again", again),
    ):
        report = {k: run.report[k] for k in ("created", "updated", "failed")}
        print(
            f"  {label:<32} {run.seconds:6.2f} s ({run.rows / run.seconds:,.0f} rows/s), "
            f"{per_row(run.seconds, run.rows) / per_row(copy_seconds, args.rows):5.0f}x COPY, "
            f"{per_row(run.seconds, run.rows) / per_row(floor_seconds, args.rows):4.2f}x the "
            f"library's saves (per row); server RSS {run.rss_before:.0f} -> "
            f"peak {run.rss_peak:.0f} MiB; {report}"
        )

    if args.profile is not None:
        summarise_profile(args.profile)


if __name__ == "__main__":
    main()

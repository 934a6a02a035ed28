"""The HTTP API under load: `python -m bench.http_api [--books N] [--seconds S]`.

One run, on a throw-away PostgreSQL database with a catalogue of `--books` books (100,000 by
default), against a real `bookstore serve --workers 2` process, with wrk (Debian's package;
installed here when missing) as the load generator at 32 connections:

- `GET /books` (filtered, sorted, a page of 20) beside a bare FastAPI route doing one
  primary-key SELECT on the same database (`bench/bare_app.py`, same worker count): one
  URL over and over (after the first, each request is the stamp read and a kept page), and
  `--varied` distinct pages drawn at random (every category, sort and filter mix, deep
  offsets: mostly pages read afresh, with their filter's total kept);
- `POST /cart/items`, then `POST /orders` (each wrk connection is one customer alternating
  "add a book" and "place the order"), beside the eventsourcing library's own save rate
  (a one-event aggregate) with 32 threads, measured in the same run.

wrk reports latency over every request of a run; in the order run that mixes the add and the
order, so the add-only run is printed too. Figures are single runs unless `--runs` says more
(medians then).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import httpx
import psycopg

from adapters.engines import event_store_env
from bench.common import BIN, free_port, fresh_database, running, server_env
from bench.write_model import Baseline, Thing, timed_threads
from bookstore.demo_catalogue import demo_books
from write_model.application import Bookstore
from write_model.book import Book
from write_model.key_index import KeyIndex

CONNECTIONS = 32
WORKERS = 2
VARIED = 10_000  # distinct pages in the varied run: most are read afresh
SAVE_BATCH = 500
BOOKS_QUERY = "/books?category=fiction&min_price=10&max_price=40&in_stock=true&sort=-price&limit=20"


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    extra: dict[str, float]


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (Debian package) ...", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or "wrk"


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, *, seconds: int, script: Path | None = None, threads: int = 2) -> WrkResult:
    command = [ensure_wrk(), "-t", str(threads), "-c", str(CONNECTIONS), "-d", f"{seconds}s"]
    command += ["--latency", "--timeout", "10s"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], check=True, capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    extra: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith("BENCH "):
            extra.update(json.loads(line[len("BENCH ") :]))
    return WrkResult(rate, p50, p99, int(bad.group(1)) if bad else 0, extra)


# ------------------------------------------------------------------ set-up


def load_catalogue(url: str, count: int) -> None:
    """`count` books with ample stock, saved 500 to a save (books and their ISBN keys)."""
    app = Bookstore(env=event_store_env(url, create_table=False, pool_size=2))
    try:
        batch: list[Book | KeyIndex] = []
        for demo in demo_books(count, seed=1):
            book = Book.register(
                title=demo.title,
                author=demo.author,
                isbn=demo.isbn,
                price=demo.price,
                stock=1_000_000,
                category=demo.category,
            )
            batch += [book, KeyIndex(kind="isbn", key=book.isbn, owner_id=book.id)]
            if len(batch) >= 2 * SAVE_BATCH:
                app.save(*batch)
                batch = []
        if batch:
            app.save(*batch)
    finally:
        app.close()


def run_cli(env: dict[str, str], *args: str) -> None:
    subprocess.run([str(BIN / "bookstore"), *args], env=env, check=True, capture_output=True)


@contextlib.contextmanager
def _serving(command: list[str], env: dict[str, str], base: str, probe: str) -> Iterator[str]:
    with running(command, env, base + probe):
        yield base


def serve(env: dict[str, str]) -> contextlib.AbstractContextManager[str]:
    port = free_port()
    command = [str(BIN / "bookstore"), "serve", "--port", str(port), "--workers", str(WORKERS)]
    return _serving(command, env, f"http://127.0.0.1:{port}", "/health")


def serve_bare(url: str, probe: str) -> contextlib.AbstractContextManager[str]:
    port = free_port()
    env = dict(os.environ, BENCH_DATABASE_URL=url)
    command = [str(BIN / "uvicorn"), "bench.bare_app:app", "--port", str(port)]
    command += ["--workers", str(WORKERS), "--log-level", "warning", "--no-access-log"]
    return _serving(command, env, f"http://127.0.0.1:{port}", probe)


def customers(base: str, count: int) -> list[str]:
    """Register and log in `count` customers; their access tokens."""
    tokens = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for n in range(count):
            email = f"bench-{n}-{os.getpid()}@example.com"
            body = {"email": email, "password": "bench password"}
            client.post("/auth/register", json=body).raise_for_status()
            login = client.post("/auth/login", json=body)
            login.raise_for_status()
            tokens.append(str(login.json()["access_token"]))
    return tokens


def sample_book_ids(url: str, count: int) -> list[UUID]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT id FROM book_listing ORDER BY random() LIMIT %s", (count,)
        ).fetchall()
    return [row[0] for row in rows]


VARIED_SCRIPT = """
local paths = {PATHS}
function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""


def varied_paths(url: str, count: int) -> list[str]:
    """`count` distinct `GET /books` pages: every category, sort and price/stock mix, and
    offsets up to 2,000 (deep pages cost the most)."""
    with psycopg.connect(url) as connection:
        found = connection.execute("SELECT DISTINCT category FROM book_listing").fetchall()
    categories = [row[0] for row in found]
    sorts = ["title", "-title", "price", "-price", "created_at", "-created_at"]
    filters = ["", "&in_stock=true", "&min_price=10&max_price=40", "&max_price=15"]
    rng = random.Random(7)
    paths: set[str] = set()
    count = min(count, len(categories) * len(sorts) * len(filters) * 100 // 2)
    while len(paths) < count:
        category = rng.choice(categories).replace(" ", "%20")
        paths.add(
            f"/books?category={category}&sort={rng.choice(sorts)}{rng.choice(filters)}"
            f"&limit=20&offset={20 * rng.randrange(100)}"
        )
    return sorted(paths)


def varied_script(paths: list[str]) -> Path:
    text = VARIED_SCRIPT.format(PATHS="{" + ",".join(f'"{p}"' for p in paths) + "}")
    path = Path(tempfile.mkstemp(suffix=".lua")[1])
    path.write_text(text)
    return path


WRITE_SCRIPT = """
local tokens = {TOKENS}
local books = {BOOKS}
local mode = "{MODE}"
local counter = 0
local all_threads = {{}}
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(all_threads, thread)
end
function init(args)
  token = tokens[(id - 1) % #tokens + 1]
  step = 0
  adds_ok = 0
  orders_ok = 0
  failures = 0
  last = ""
end
function request()
  step = step + 1
  local headers = {{}}
  headers["Authorization"] = "Bearer " .. token
  if mode == "orders" and step % 2 == 0 then
    last = "order"
    return wrk.format("POST", "/orders", headers, nil)
  end
  last = "add"
  headers["Content-Type"] = "application/json"
  local book = books[math.random(#books)]
  return wrk.format("POST", "/cart/items", headers,
    '{{"book_id":"' .. book .. '","quantity":1}}')
end
function response(status, headers, body)
  if status == 201 and last == "order" then orders_ok = orders_ok + 1
  elseif status == 201 then adds_ok = adds_ok + 1
  else failures = failures + 1 end
end
function done(summary, latency, requests)
  local adds, orders, bad = 0, 0, 0
  for _, thread in ipairs(all_threads) do
    adds = adds + thread:get("adds_ok")
    orders = orders + thread:get("orders_ok")
    bad = bad + thread:get("failures")
  end
  local seconds = summary.duration / 1e6
  io.write(string.format('BENCH {{"adds_per_s": %.1f, "orders_per_s": %.1f, "failed": %d}}\\n',
    adds / seconds, orders / seconds, bad))
end
"""


def write_script(tokens: list[str], books: list[UUID], mode: str) -> Path:
    lua_list = lambda values: "{" + ",".join(f'"{v}"' for v in values) + "}"  # noqa: E731
    text = WRITE_SCRIPT.format(TOKENS=lua_list(tokens), BOOKS=lua_list(books), MODE=mode)
    path = Path(tempfile.mkstemp(suffix=".lua")[1])
    path.write_text(text)
    return path


def library_saves_per_second(url: str, threads: int, per_thread: int) -> float:
    """The eventsourcing library's own rate: one-event aggregates, `threads` at once."""
    app = Baseline(env=event_store_env(url, create_table=True, pool_size=threads + 2))
    try:
        for _ in range(20):
            app.save(Thing())
        seconds, _ = timed_threads([[lambda: app.save(Thing())] * per_thread] * threads)
    finally:
        app.close()
    return threads * per_thread / seconds


# ------------------------------------------------------------------ the run


def one_run(books: int, seconds: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    with fresh_database("bench_http") as url:
        # 32 customers register from one address, the bench's.
        env = server_env(url, BOOKSTORE_REGISTER_MAX_PER_ADDRESS="1000")
        run_cli(env, "migrate")
        started = time.perf_counter()
        load_catalogue(url, books)
        run_cli(env, "projections", "catch-up", "--batch-size", "5000")
        # What autovacuum does to a table in steady state: statistics and a visibility map.
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE")
        print(f"  catalogue of {books} books ready in {time.perf_counter() - started:.0f} s")
        book_ids = sample_book_ids(url, 2000)
        with serve(env) as base:
            httpx.get(base + BOOKS_QUERY).raise_for_status()
            read = wrk(base + BOOKS_QUERY, seconds=seconds)
            varied = wrk(base, seconds=seconds, script=varied_script(varied_paths(url, VARIED)))
            tokens = customers(base, CONNECTIONS)
            adds = wrk(
                base,
                seconds=seconds,
                threads=CONNECTIONS,
                script=write_script(tokens, book_ids, "adds"),
            )
            orders = wrk(
                base,
                seconds=seconds,
                threads=CONNECTIONS,
                script=write_script(tokens, book_ids, "orders"),
            )
        with serve_bare(url, f"/books/{book_ids[0]}") as bare:
            baseline = wrk(f"{bare}/books/{book_ids[0]}", seconds=seconds)
        saves = library_saves_per_second(url, CONNECTIONS, 60)
    figures.update(
        books_rps=read.requests_per_second, books_p50=read.p50_ms, books_p99=read.p99_ms,
        books_bad=read.non_2xx,
        varied_rps=varied.requests_per_second, varied_p50=varied.p50_ms,
        varied_p99=varied.p99_ms, varied_bad=varied.non_2xx,
        bare_rps=baseline.requests_per_second, bare_p50=baseline.p50_ms,
        bare_p99=baseline.p99_ms,
        adds_per_s=adds.extra.get("adds_per_s", 0.0), adds_p50=adds.p50_ms,
        adds_p99=adds.p99_ms, adds_failed=adds.extra.get("failed", 0.0),
        orders_per_s=orders.extra.get("orders_per_s", 0.0), mixed_p50=orders.p50_ms,
        mixed_p99=orders.p99_ms, orders_failed=orders.extra.get("failed", 0.0),
        library_saves=saves,
    )  # fmt: skip
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_api", description=__doc__)
    parser.add_argument("--books", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    runs = []
    for n in range(args.runs):
        print(f"run {n + 1} of {args.runs}", flush=True)
        runs.append(one_run(args.books, args.seconds))
    f = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    print(f"\nHTTP API, {args.books} books, {CONNECTIONS} connections, serve --workers {WORKERS}")
    print(
        f"  GET /books (filtered, sorted, page of 20): {f['books_rps']:,.0f} req/s, "
        f"p50 {f['books_p50']:.1f} ms, p99 {f['books_p99']:.1f} ms, non-2xx {f['books_bad']:.0f}"
    )
    print(
        f"  GET /books, {VARIED:,} distinct pages at random: {f['varied_rps']:,.0f} req/s, "
        f"p50 {f['varied_p50']:.1f} ms, p99 {f['varied_p99']:.1f} ms, "
        f"non-2xx {f['varied_bad']:.0f}; ratio to bare {f['varied_rps'] / f['bare_rps']:.2f}"
    )
    print(
        f"  bare FastAPI primary-key SELECT:           {f['bare_rps']:,.0f} req/s, "
        f"p50 {f['bare_p50']:.1f} ms, p99 {f['bare_p99']:.1f} ms"
    )
    print(
        f"  ratio GET /books / bare: {f['books_rps'] / f['bare_rps']:.2f}  (target >= 0.7, "
        f"p99 < 60 ms)"
    )
    print(
        f"  POST /cart/items: {f['adds_per_s']:,.0f} adds/s, p50 {f['adds_p50']:.1f} ms, "
        f"p99 {f['adds_p99']:.1f} ms, failed {f['adds_failed']:.0f}"
    )
    print(
        f"  POST /orders (alternating with an add): {f['orders_per_s']:,.0f} orders/s, "
        f"p50 {f['mixed_p50']:.1f} ms, p99 {f['mixed_p99']:.1f} ms over both requests, "
        f"failed {f['orders_failed']:.0f}"
    )
    print(
        f"  library saves/s, {CONNECTIONS} threads: {f['library_saves']:,.0f}; "
        f"ratio orders/saves {f['orders_per_s'] / f['library_saves']:.2f} (target >= 0.5)"
    )


if __name__ == "__main__":
    main()

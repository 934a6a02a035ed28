"""Which `book_listing` indexes `GET /books` uses: EXPLAIN ANALYZE on 100,000 rows.

`python -m bench.book_listing_plans [--rows N]` fills a throw-away database's book_listing
with N rows (realistic spreads: 5,000 authors, 6 categories, prices 1-100, one book in ten
out of stock), VACUUM ANALYZEs it, and runs every filter and sort of the contract through
`read_model.books.list_books` (the page query and the count the API runs), printing the
plan's access path and time for each, and for each index whether any plan used it. It
measures how many stock updates (an order's reservations, a restock) are HOT updates, which
an index on `stock` rules out. All of it twice: with the indexes of read-side revision 0004
(before the index diet), then of the head.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import Connection, event, text

from adapters.engines import make_engine
from bench.common import fresh_database
from bookstore import bootstrap
from read_model.books import BookFilters, list_books
from read_model.bulk_writes import copy_rows
from read_model.tables import book_listing

CATEGORIES = ("fiction", "science fiction", "history", "poetry", "travel", "children")
WORDS = (
    "dune",
    "night",
    "river",
    "stone",
    "garden",
    "winter",
    "empire",
    "shadow",
    "glass",
    "city",
    "silent",
    "ocean",
    "crown",
    "forest",
    "machine",
    "letters",
    "summer",
    "orchard",
    "lantern",
    "harbor",
    "north",
)

SCENARIOS: list[tuple[str, BookFilters, str, int]] = [
    ("no filter, sort=title", BookFilters(), "title", 0),
    ("no filter, sort=-title", BookFilters(), "-title", 0),
    ("no filter, sort=price", BookFilters(), "price", 0),
    ("no filter, sort=-price", BookFilters(), "-price", 0),
    ("no filter, sort=created_at", BookFilters(), "created_at", 0),
    ("no filter, sort=-created_at", BookFilters(), "-created_at", 0),
    ("no filter, sort=title, offset=5000", BookFilters(), "title", 5000),
    ("q=herbert (an author), sort=title", BookFilters(q="herbert"), "title", 0),
    ("q=lantern harbor (a title), sort=-price", BookFilters(q="lantern harbor"), "-price", 0),
    ("q=ab (2 letters), sort=title", BookFilters(q="ab"), "title", 0),
    ("author=Author 42, sort=title", BookFilters(author="Author 42"), "title", 0),
    ("author=Author 42, sort=-price", BookFilters(author="Author 42"), "-price", 0),
    ("category=poetry, sort=title", BookFilters(category="poetry"), "title", 0),
    ("category=poetry, sort=-price", BookFilters(category="poetry"), "-price", 0),
    ("category=poetry, sort=-created_at", BookFilters(category="poetry"), "-created_at", 0),
    (
        "min_price=10, max_price=12, sort=price",
        BookFilters(min_price=Decimal(10), max_price=Decimal(12)),
        "price",
        0,
    ),
    (
        "min_price=10, max_price=12, sort=title",
        BookFilters(min_price=Decimal(10), max_price=Decimal(12)),
        "title",
        0,
    ),
    ("in_stock=true, sort=title", BookFilters(in_stock=True), "title", 0),
    ("in_stock=false, sort=title", BookFilters(in_stock=False), "title", 0),
    (
        "category=poetry, in_stock=true, max_price=20, sort=-price",
        BookFilters(category="poetry", in_stock=True, max_price=Decimal(20)),
        "-price",
        0,
    ),
]


def make_rows(count: int, rng: random.Random) -> list[dict[str, Any]]:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for n in range(count):
        title = " ".join(rng.sample(WORDS, 3)).title() + f" {n}"
        author = "Frank Herbert" if n % 1000 == 0 else f"Author {rng.randrange(5000)}"
        category = rng.choice(CATEGORIES)
        created = start + timedelta(seconds=n * 37)
        rows.append(
            {
                "id": uuid.uuid4(),
                "title": title,
                "author": author,
                "isbn": f"978{rng.randrange(10**10):010d}",
                "price_cents": rng.randrange(100, 10_000),
                "stock": 0 if rng.random() < 0.1 else rng.randrange(1, 50),
                "category": category,
                "created_at": created,
                "updated_at": created,
                "version": 1,
                "title_lower": title.lower(),
                "author_lower": author.lower(),
                "category_lower": category,
            }
        )
    return rows


@contextmanager
def captured(connection: Connection) -> Iterator[list[tuple[str, Any]]]:
    """The statements `list_books` sends, with their parameters."""
    found: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            found.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield found
    finally:
        event.remove(connection, "before_cursor_execute", record)


def _walk(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _walk(child)


def access_path(plan: dict[str, Any]) -> tuple[str, set[str]]:
    """A short description of how the plan reads the table, and the indexes it uses."""
    parts = []
    used = set()
    for node in _walk(plan):
        kind = node["Node Type"]
        if "Index Name" in node:
            used.add(node["Index Name"])
            direction = " backward" if node.get("Scan Direction") == "Backward" else ""
            parts.append(f"{kind}{direction} {node['Index Name']}")
        elif kind in ("Seq Scan", "Incremental Sort", "Sort", "BitmapOr"):
            parts.append(kind)
    return " > ".join(parts), used


def explain(
    url: str, statement: str, parameters: Any, runs: int = 3
) -> tuple[float, str, set[str]]:
    with psycopg.connect(url) as connection:
        times = []
        plan: dict[str, Any] = {}
        for _ in range(runs):
            row = connection.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
            ).fetchone()
            assert row is not None
            plan = row[0][0]
            times.append(float(plan["Execution Time"]))
        path, used = access_path(plan["Plan"])
        return statistics.median(times), path, used


def plans(url: str, engine_url: str) -> tuple[dict[str, set[str]], float]:
    """Every scenario's page and count plans; the indexes each used; total median ms."""
    engine = make_engine(engine_url, pool_size=1)
    used_by: dict[str, set[str]] = {}
    total = 0.0
    try:
        for label, filters, sort, offset in SCENARIOS:
            with engine.connect() as connection, captured(connection) as statements:
                page = list_books(connection, filters, sort, limit=20, offset=offset)
            (page_sql, page_params), (count_sql, count_params) = statements
            page_ms, page_path, page_used = explain(url, page_sql, page_params)
            count_ms, count_path, count_used = explain(url, count_sql, count_params)
            total += page_ms + count_ms
            for index in page_used | count_used:
                used_by.setdefault(index, set()).add(label)
            print(f"  {label}: {len(page.items)} of {page.total}")
            print(f"    page  {page_ms:7.2f} ms  {page_path}")
            print(f"    count {count_ms:7.2f} ms  {count_path}")
    finally:
        engine.dispose()
    return used_by, total


def _updated(url: str) -> tuple[int, int]:
    """(updates, HOT updates) of book_listing so far, as the statistics say."""
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
            " WHERE relname = 'book_listing'"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def hot_updates(url: str, updates: int = 2000) -> tuple[int, int]:
    """Stock changes as orders make them, on books picked at random: (HOT, all)."""
    rng = random.Random(5)
    before = _updated(url)
    with psycopg.connect(url, autocommit=True) as connection:
        ids = [row[0] for row in connection.execute("SELECT id FROM book_listing")]
        for _ in range(updates):
            connection.execute(
                "UPDATE book_listing SET stock = stock + 1, version = version + 1,"
                " updated_at = now() WHERE id = %s",
                [rng.choice(ids)],
            )
    time.sleep(1.5)  # the closed session's statistics reach the shared ones
    after = _updated(url)
    return after[1] - before[1], after[0] - before[0]


def measure(url: str, rows: list[dict[str, Any]], label: str) -> None:
    engine = make_engine(url, pool_size=1)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE book_listing"))
        copy_rows(connection, book_listing, rows)
    with engine.connect() as connection:
        indexes = [
            row[0]
            for row in connection.execute(
                text("SELECT indexname FROM pg_indexes WHERE tablename = 'book_listing'")
            )
        ]
    engine.dispose()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE book_listing")
    print(f"{label}: book_listing, {len(rows):,} rows, {len(indexes)} indexes")
    used_by, total = plans(url, url)
    print(f"  sum of the medians (page + count, {len(SCENARIOS)} scenarios): {total:.1f} ms")
    print("  indexes, and the scenarios whose plans used them:")
    for index in sorted(indexes):
        scenarios = used_by.get(index, set())
        print(f"    {index}: {len(scenarios)} {json.dumps(sorted(scenarios))[:200]}")
    hot, total_updates = hot_updates(url)
    print(f"  stock updates: {hot} of {total_updates} were HOT")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.book_listing_plans")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    rows = make_rows(args.rows, random.Random(11))
    with fresh_database("bench_plans") as url:
        bootstrap.run_alembic_upgrade(url, "0004")
        measure(url, rows, "before (revision 0004)")
        bootstrap.run_alembic_upgrade(url)
        measure(url, rows, "after (head)")


if __name__ == "__main__":
    main()

"""Helpers for the gap-safe log tests (no tests here): raw writers and recording projections.

Kept importable by name, because the writer and runner subprocesses import them too.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from decimal import Decimal
from multiprocessing.synchronize import Barrier, Event
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    insert,
    select,
)

from projections.base import Projection
from projections.book_listing import BookListingProjection
from projections.events import Positioned, topic_of
from projections.runner import Runner
from tests.factories import book_payload
from tests.integration.projection_support import CountingProjection, engine_for, write_app_for
from write_model.application import Bookstore
from write_model.book import Book

EVENTS_TABLE = "bookstore_events"

# ----------------------------------------------------------------------------- raw writers


class RawWriter:
    """A connection that is not the application's, inserting events with a plain INSERT:
    no table lock, no library code, in a transaction it commits when told."""

    def __init__(self, url: str) -> None:
        self.connection = psycopg.connect(url, autocommit=False)

    @property
    def pid(self) -> int:
        return int(self.connection.info.backend_pid)

    def take_transaction_id(self) -> int:
        """Get a transaction id now (as any earlier write would), before inserting."""
        row = self.connection.execute("SELECT pg_current_xact_id()::text").fetchone()
        assert row is not None
        return int(row[0])

    def insert(self, events: Sequence[StoredEvent]) -> list[int]:
        """Insert in one statement; the store positions the rows got."""
        rows = self.connection.execute(
            f"INSERT INTO {EVENTS_TABLE} (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[], %s::bytea[])"
            " RETURNING notification_id",
            (
                [event.originator_id for event in events],
                [event.originator_version for event in events],
                [event.topic for event in events],
                [event.state for event in events],
            ),
        ).fetchall()
        return [int(row[0]) for row in rows]

    def commit(self) -> None:
        self.connection.commit()

    def rollback(self) -> None:
        self.connection.rollback()

    def close(self) -> None:
        self.connection.close()


def stored(app: Bookstore, *books: Book) -> list[StoredEvent]:
    """The pending events of `books` as the store would hold them (and no longer pending)."""
    return [app.mapper.to_stored_event(event) for book in books for event in book.collect_events()]


def new_books(count: int, **fields: Any) -> list[Book]:
    return [Book.register(**book_payload(**fields)) for _ in range(count)]


# ----------------------------------------------------------------------------- projections

order_metadata = MetaData()
received = Table(
    "test_received_events",
    order_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("projection", String(100), nullable=False),
    Column("book_id", Uuid, nullable=False),
    Column("version", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
)


class ReceivingProjection(Projection):
    """Records each Book event it is given, in the order given: what a projection sees."""

    table = received

    def __init__(self, name: str) -> None:
        self.name = name  # type: ignore[misc]
        super().__init__()

    def handled(self) -> dict[str, Any]:
        return {topic_of(Book, "Registered"): None, topic_of(Book, "Restocked"): None}

    def apply(self, connection: Connection, events: Sequence[Positioned]) -> None:
        if events:
            connection.execute(
                insert(received),
                [
                    {
                        "projection": self.name,
                        "book_id": item.event.originator_id,
                        "version": item.event.originator_version,
                        "position": item.position,
                    }
                    for item in events
                ],
            )


def received_versions(connection: Connection, name: str) -> dict[UUID, list[int]]:
    """Each book's versions in the order the projection received them."""
    found: dict[UUID, list[int]] = {}
    rows = connection.execute(
        select(received.c.book_id, received.c.version)
        .where(received.c.projection == name)
        .order_by(received.c.seq)
    )
    for book_id, version in rows:
        found.setdefault(book_id, []).append(version)
    return found


# ----------------------------------------------------------------------------- processes

BOOKS_PER_SAVE = 5
CHANGES_PER_BOOK = 4


def run_writer(url: str, seed: int, books: int, raw: bool, start_together: Barrier) -> None:
    """One writer process: `books` books of 1 + CHANGES_PER_BOOK events, saved 5 at a time.

    Raw writers take their transaction id, pause, insert, pause, then commit, so
    transaction ids, store positions and commits come out of order with the other writers'.
    The others save through the application (the library's lock-free insert).
    """
    rng = random.Random(seed)
    app = write_app_for(url)
    writer = RawWriter(url) if raw else None
    try:
        catalogue = new_books(books)
        groups = [
            catalogue[i : i + BOOKS_PER_SAVE] for i in range(0, len(catalogue), BOOKS_PER_SAVE)
        ]
        start_together.wait(timeout=120)
        for round_ in range(1 + CHANGES_PER_BOOK):
            for group in groups:
                if round_:
                    for book in group:
                        if round_ % 2:
                            book.restock(rng.randint(1, 3))
                        else:
                            book.change_details(price=Decimal(book.price) + Decimal("0.25"))
                if writer is None:
                    app.save(*group)
                    continue
                writer.take_transaction_id()
                time.sleep(rng.uniform(0, 0.002))
                writer.insert(stored(app, *group))
                time.sleep(rng.uniform(0, 0.002))
                writer.commit()
    finally:
        if writer is not None:
            writer.close()
        app.close()


def run_runner(url: str, batch_size: int, writers_done: Event, start_together: Barrier) -> None:
    """One runner process: batches of both projections, racing the others, until the
    writers are done and nothing is left."""
    app = write_app_for(url)
    engine = engine_for(url)
    try:
        runner = Runner(app, engine, [BookListingProjection(), CountingProjection()])
        start_together.wait(timeout=120)
        while True:
            finished = writers_done.is_set()
            results = [runner.catch_up(name, batch_size) for name in runner.names]
            assert not any(result.failed for result in results), results
            if finished and all(result.caught_up for result in results):
                return
    finally:
        engine.dispose()
        app.close()

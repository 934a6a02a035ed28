"""Helpers for the projection and worker tests (no tests here).

Kept importable by name, because subprocesses (runner processes, Celery workers) import
them too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    create_engine,
    func,
    insert,
    select,
)

from adapters.engines import event_store_env, sqlalchemy_url
from projections.base import Projection
from projections.book_listing import BookListingProjection
from projections.events import Positioned, topic_of
from projections.runner import Runner
from read_model.tables import book_listing
from tests.factories import book_payload
from write_model.application import Bookstore
from write_model.book import Book

# A table of the test's own (not a read-model table): one row per application of an event.
applications_metadata = MetaData()
applications = Table(
    "test_event_applications",
    applications_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("book_id", Uuid, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("applied_by", String(50), nullable=False),
)


class CountingProjection(Projection):
    """Records every application of every Book event, with no idempotency of its own.

    The real projections skip an event they have seen (row versions), which would hide a
    runner that applies a batch twice; this one counts, so a double shows.
    """

    name = "test_applications"
    table = applications

    def handled(self) -> dict[str, Any]:
        names = (
            "Registered",
            "DetailsChanged",
            "Restocked",
            "StockCorrected",
            "StockReserved",
            "StockReleased",
            "Removed",
        )
        return {topic_of(Book, name): None for name in names}

    def apply(self, connection: Connection, events: Sequence[Positioned]) -> None:
        if events:
            connection.execute(
                insert(applications),
                [
                    {
                        "book_id": item.event.originator_id,
                        "position": item.position,
                        "applied_by": str(os.getpid()),
                    }
                    for item in events
                ],
            )


def engine_for(url: str) -> Engine:
    return create_engine(sqlalchemy_url(url))


def write_app_for(url: str) -> Bookstore:
    return Bookstore(env=event_store_env(url, create_table=False, pool_size=2))


def save_books(app: Bookstore, count: int, *, events_per_book: int = 5, **fields: Any) -> None:
    """Save `count` books of `events_per_book` events each, 100 books per transaction.

    Built in memory and saved in bulk, so thousands of events take a second, not minutes.
    """
    chunk: list[Book] = []
    for _ in range(count):
        book = Book.register(**book_payload(**fields))
        for step in range(events_per_book - 1):
            if step % 2 == 0:
                book.restock(step + 1)
            else:
                book.change_details(price=Decimal(book.price) + Decimal("0.25"))
        chunk.append(book)
        if len(chunk) == 100:
            app.save(*chunk)
            chunk = []
    if chunk:
        app.save(*chunk)


def table_rows(engine: Engine, table: Table) -> list[dict[str, Any]]:
    """Every row of a table as dicts, in key order (for comparing two databases)."""
    keys = list(table.primary_key.columns)
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(table).order_by(*keys))]


def rebuild_book_listing(event_store_url: str, fresh_read_url: str) -> list[dict[str, Any]]:
    """A fresh single-runner rebuild of book_listing into another database: its rows."""
    from bookstore.bootstrap import run_alembic_upgrade

    run_alembic_upgrade(fresh_read_url)
    app = write_app_for(event_store_url)
    engine = engine_for(fresh_read_url)
    try:
        runner = Runner(app, engine, [BookListingProjection()])
        result = runner.catch_up_fully("book_listing", batch_size=1000)
        assert result.caught_up, result
        return table_rows(engine, book_listing)
    finally:
        engine.dispose()
        app.close()


def application_counts(engine: Engine) -> dict[str, int]:
    """How many applications, distinct positions and rows applied more than once."""
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(applications)).scalar_one()
        distinct = connection.execute(
            select(func.count(func.distinct(applications.c.position)))
        ).scalar_one()
        per_position = (
            select(applications.c.position, func.count().label("n"))
            .group_by(applications.c.position)
            .subquery()
        )
        doubled = connection.execute(
            select(func.count()).select_from(per_position).where(per_position.c.n > 1)
        ).scalar_one()
        runners = connection.execute(
            select(func.count(func.distinct(applications.c.applied_by)))
        ).scalar_one()
    return {"total": total, "distinct": distinct, "doubled": doubled, "runners": runners}


def per_book_application_counts(engine: Engine) -> dict[Any, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(applications.c.book_id, func.count()).group_by(applications.c.book_id)
        )
        return {row[0]: row[1] for row in rows}

"""Exactly once under competition: four runner processes on one projection, PostgreSQL."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier

import pytest

from bookstore import bootstrap
from projections.book_listing import BookListingProjection
from projections.runner import Runner
from read_model.tables import book_listing
from tests.conftest import make_settings
from tests.integration.projection_support import (
    CountingProjection,
    application_counts,
    applications_metadata,
    engine_for,
    per_book_application_counts,
    rebuild_book_listing,
    save_books,
    table_rows,
    write_app_for,
)
from tests.services import fresh_postgres_database

pytestmark = pytest.mark.postgres

BOOKS = 1000
EVENTS_PER_BOOK = 5
RUNNERS = 4
BATCH_SIZE = 50


def run_competitor(url: str, start_together: Barrier) -> None:
    """One runner process: catch both projections up, batch by batch, racing the others."""
    app = write_app_for(url)
    engine = engine_for(url)
    try:
        runner = Runner(app, engine, [BookListingProjection(), CountingProjection()])
        start_together.wait(timeout=60)
        while True:
            results = [runner.catch_up(name, BATCH_SIZE) for name in runner.names]
            if all(result.caught_up for result in results):
                return
            assert not any(result.failed for result in results), results
    finally:
        engine.dispose()
        app.close()


def test_four_runner_processes_apply_every_event_exactly_once(postgres_url: str) -> None:
    bootstrap.migrate(make_settings(postgres_url))
    engine = engine_for(postgres_url)
    applications_metadata.create_all(engine)
    app = write_app_for(postgres_url)
    save_books(app, BOOKS, events_per_book=EVENTS_PER_BOOK)
    head = app.head()
    app.close()
    assert head == BOOKS * EVENTS_PER_BOOK

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(RUNNERS)
    processes = [
        context.Process(target=run_competitor, args=(postgres_url, barrier)) for _ in range(RUNNERS)
    ]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=120)
        assert [process.exitcode for process in processes] == [0] * RUNNERS
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(timeout=10)

    counts = application_counts(engine)
    assert counts["total"] == counts["distinct"] == BOOKS * EVENTS_PER_BOOK
    assert counts["doubled"] == 0
    assert counts["runners"] >= 2  # they did compete
    assert set(per_book_application_counts(engine).values()) == {EVENTS_PER_BOOK}
    competed = table_rows(engine, book_listing)
    engine.dispose()
    assert len(competed) == BOOKS
    with fresh_postgres_database() as fresh_url:
        assert rebuild_book_listing(postgres_url, fresh_url) == competed

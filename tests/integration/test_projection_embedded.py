"""The embedded default: projections run in-process, woken by commits; readers wait."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import event

from bookstore import bootstrap
from bookstore.bootstrap import Container
from read_model.books import get_book
from tests.conftest import make_settings
from tests.factories import book_payload, ctx


def test_commands_become_visible_without_anything_but_the_serving_process(
    container: Container,
) -> None:
    container.start()
    app = container.write_app
    book = app.register_book(ctx(), **book_payload(title="Embedded", stock=1))
    position = app.restock_book(ctx(), book.id, 4)

    assert container.wait_for_position("book_listing", position, timeout=10)
    with container.read_engine.connect() as connection:
        row = get_book(connection, book.id)
    assert row is not None
    assert (row["title"], row["stock"]) == ("Embedded", 5)
    assert container.projection_position("book_listing") >= position

    background = container.projections.background
    assert background is not None
    assert background.running
    container.close()
    assert not background.running


def count_statements(container: Container) -> list[str]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(container.read_engine, "before_cursor_execute", record)
    return seen


def test_waiting_for_a_position_nobody_reaches_times_out_without_hammering(
    container: Container,
) -> None:
    position = container.write_app.register_book(ctx(), **book_payload()).position
    statements = count_statements(container)

    started = time.monotonic()
    reached = container.wait_for_position("book_listing", position, timeout=1.0)
    waited = time.monotonic() - started

    assert not reached
    assert 1.0 <= waited < 5.0
    # Back-off polling on SQLite, LISTEN/NOTIFY on PostgreSQL: a handful of reads a second.
    assert len(statements) <= 20, statements


@pytest.mark.postgres
def test_a_waiter_is_woken_by_a_runner_in_another_process_through_notify(
    postgres_url: str,
) -> None:
    settings = make_settings(postgres_url)
    bootstrap.migrate(settings)
    reader = bootstrap.build(settings)  # waits; never runs a projection itself
    worker = bootstrap.build(settings)  # stands for a worker process
    try:
        position = reader.write_app.register_book(ctx(), **book_payload()).position
        statements = count_statements(reader)
        timer = threading.Timer(
            0.3, worker.projections.runner.catch_up_fully, args=("book_listing",)
        )
        timer.start()
        try:
            assert reader.wait_for_position("book_listing", position, timeout=10)
        finally:
            timer.join(timeout=10)
        # Woken by the NOTIFY, not by polling: one read before waiting, at most a couple after.
        assert len(statements) <= 3, statements
    finally:
        reader.close()
        worker.close()

"""A poison event stops its projection there, visibly, and is retried, never skipped."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy import select

from bookstore import bootstrap
from bookstore.bootstrap import Container
from projections.base import Batch, Handler
from projections.book_listing import BookListingProjection
from projections.events import topic_of
from projections.rows import Row
from projections.runner import Runner
from read_model.tables import book_listing
from tests.conftest import make_settings
from tests.factories import book_payload, ctx
from write_model.book import Book

POISON_TITLE = "Poison"


class PickyBookListing(BookListingProjection):
    """book_listing with a registration handler that refuses one title while `refusing`."""

    refusing = True

    def handled(self) -> Mapping[str, Handler]:
        handlers = dict(super().handled())
        registered = handlers[topic_of(Book, "Registered")]

        def picky(row: Row | None, event: Any, batch: Batch) -> Row | None:
            if self.refusing and event.title == POISON_TITLE:
                raise ValueError(f"cannot list {event.title!r}")
            return registered(row, event, batch)

        handlers[topic_of(Book, "Registered")] = picky
        return handlers


def listed_titles(container: Container) -> list[str]:
    with container.read_engine.connect() as connection:
        return list(
            connection.execute(
                select(book_listing.c.title).order_by(book_listing.c.title)
            ).scalars()
        )


def test_a_failing_handler_stops_the_projection_at_that_event_until_it_succeeds(
    container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    app = container.write_app
    app.register_book(ctx(), **book_payload(title="A before"))
    app.register_book(ctx(), **book_payload(title="B before"))
    poison = app.register_book(ctx(), **book_payload(title=POISON_TITLE)).position
    app.register_book(ctx(), **book_payload(title="C after"))
    head = app.head()
    picky = PickyBookListing()
    runner = Runner(app, container.read_engine, [picky])

    with caplog.at_level(logging.WARNING, logger="projections.runner"):
        first = runner.catch_up_fully("book_listing", batch_size=100)
        second = runner.catch_up_fully("book_listing", batch_size=100)

    # Registering a book saves the book's event, then its ISBN index's: the poison event is
    # the one before the position that save returned.
    poison_event = poison - 1
    for result in (first, second):
        assert result.failed
        assert result.position == poison_event - 1
        assert result.error_position == poison_event
        assert "cannot list 'Poison'" in (result.error or "")
    assert listed_titles(container) == ["A before", "B before"]
    # Loud once (with the traceback), then a short reminder on every retry.
    assert [(r.levelname, r.exc_info is not None) for r in caplog.records] == [
        ("ERROR", True),
        ("WARNING", False),
    ]
    (status,) = [s for s in container.projection_statuses() if s.name == "book_listing"]
    assert (status.state, status.position, status.error_position, status.head) == (
        "failed",
        poison_event - 1,
        poison_event,
        head,
    )
    assert status.last_error is not None
    assert "ValueError: cannot list 'Poison'" in status.last_error

    picky.refusing = False
    resumed = runner.catch_up_fully("book_listing", batch_size=100)

    assert resumed.caught_up
    assert resumed.start == poison_event - 1
    assert resumed.applied == 2  # the poison event itself, then the one after it
    assert listed_titles(container) == ["A before", "B before", "C after", POISON_TITLE]
    (status,) = [s for s in container.projection_statuses() if s.name == "book_listing"]
    assert (status.state, status.position, status.last_error) == ("up_to_date", head, None)


def test_a_failure_in_a_one_event_batch_is_recorded_the_same_way(container: Container) -> None:
    app = container.write_app
    poison = app.register_book(ctx(), **book_payload(title=POISON_TITLE)).position
    runner = Runner(app, container.read_engine, [PickyBookListing()])

    result = runner.catch_up("book_listing", batch_size=1)

    assert (result.failed, result.error_position, result.position) == (True, poison - 1, poison - 2)
    assert listed_titles(container) == []


class OverlongIsbnListing(BookListingProjection):
    """Writes an ISBN too long for its column for one title: the database refuses the batch."""

    def handled(self) -> Mapping[str, Handler]:
        handlers = dict(super().handled())
        registered = handlers[topic_of(Book, "Registered")]

        def overlong(row: Row | None, event: Any, batch: Batch) -> Row | None:
            new = registered(row, event, batch)
            if new is not None and event.title == POISON_TITLE:
                new["isbn"] = "9" * 40
            return new

        handlers[topic_of(Book, "Registered")] = overlong
        return handlers


@pytest.mark.postgres
def test_a_batch_the_database_refuses_is_narrowed_down_to_the_event_that_causes_it(
    postgres_url: str,
) -> None:
    settings = make_settings(postgres_url)
    bootstrap.migrate(settings)
    container = bootstrap.build(settings)
    try:
        app = container.write_app
        app.register_book(ctx(), **book_payload(title="A before"))
        poison = app.register_book(ctx(), **book_payload(title=POISON_TITLE)).position
        app.register_book(ctx(), **book_payload(title="C after"))
        runner = Runner(app, container.read_engine, [OverlongIsbnListing()])

        result = runner.catch_up_fully("book_listing", batch_size=100)

        assert (result.failed, result.error_position, result.position) == (
            True,
            poison - 1,
            poison - 2,
        )
        assert "value too long" in (result.error or "")
        assert listed_titles(container) == ["A before"]
    finally:
        container.close()

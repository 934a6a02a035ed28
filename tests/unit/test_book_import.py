"""A catalogue import on the in-memory store: check every row, then upsert in batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import pytest

from tests.factories import book_create_body, ctx, new_book, random_isbn10
from write_model.application import Bookstore
from write_model.book_batches import BatchOutcome, BookBatchImporter
from write_model.book_import import (
    ImportInterruptedError,
    ImportRefusedError,
    TooManyRowsError,
    import_books,
)
from write_model.book_rows import BookRow, RawRow
from write_model.context import CommandContext
from write_model.errors import ConcurrencyError
from write_model.isbn import normalise_isbn


@pytest.fixture
def app() -> Iterator[Bookstore]:
    bookstore = Bookstore(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield bookstore
    bookstore.close()


def source(*bodies: dict[str, Any] | None) -> Callable[[], Iterator[RawRow]]:
    """Rows as the JSON reader gives them; None stands for an element that is no object."""

    def open_rows() -> Iterator[RawRow]:
        for number, body in enumerate(bodies, start=1):
            yield RawRow(number, dict(body)) if body is not None else RawRow(number, None, "no")

    return open_rows


def run(app: Bookstore, *bodies: dict[str, Any] | None, **options: Any) -> Any:
    return import_books(BookBatchImporter(app), ctx(), source(*bodies), **options)


def event_count(app: Bookstore) -> int:
    """The store's head: it moves with every event recorded."""
    return app.recorder.max_notification_id() or 0


def test_an_import_registers_new_books_and_claims_their_isbns(app: Bookstore) -> None:
    bodies = [book_create_body() for _ in range(5)]
    report = run(app, *bodies, batch_size=2)
    assert report.as_json() == {"created": 5, "updated": 0, "failed": 0, "errors": []}
    assert report.position == app.recorder.max_notification_id()
    for body in bodies:
        book = app.find_book_by_isbn(body["isbn"])
        assert book is not None
        assert (book.title, book.price, book.stock) == (
            body["title"],
            Decimal(body["price"]),
            body["stock"],
        )


def test_importing_the_same_rows_again_records_nothing(app: Bookstore) -> None:
    bodies = [book_create_body() for _ in range(4)]
    run(app, *bodies)
    before = event_count(app)
    report = run(app, *bodies)
    assert report.as_json() == {"created": 0, "updated": 0, "failed": 0, "errors": []}
    assert report.position is None
    assert event_count(app) == before


def test_a_changed_row_updates_its_book_and_counts_once(app: Bookstore) -> None:
    body = book_create_body(stock=3)
    book_id = app.register_book(ctx(), **book_create_body(**body)).id
    same = book_create_body()
    run(app, same)
    report = run(app, {**body, "price": "1.25", "stock": 9}, same)
    assert (report.created, report.updated) == (0, 1)
    book = app.get_book(book_id)
    assert (book.price, book.stock) == (Decimal("1.25"), 9)


def test_a_row_without_stock_keeps_the_stock_of_an_existing_book_and_gives_zero_to_a_new_one(
    app: Bookstore,
) -> None:
    existing = book_create_body(stock=5)
    book_id = app.register_book(ctx(), **existing).id
    new = book_create_body()
    del existing["stock"], new["stock"]
    run(app, {**existing, "title": "Renamed"}, new)
    assert app.get_book(book_id).stock == 5
    created = app.find_book_by_isbn(new["isbn"])
    assert created is not None
    assert created.stock == 0


def test_an_isbn10_row_updates_the_book_known_by_its_isbn13(app: Bookstore) -> None:
    isbn10 = random_isbn10()
    book_id = new_book(app, isbn=normalise_isbn(isbn10), stock=1)
    report = run(app, book_create_body(isbn=isbn10, stock=2))
    assert (report.created, report.updated) == (0, 1)
    assert app.get_book(book_id).stock == 2


def test_a_removed_book_s_isbn_is_claimed_again_by_a_new_book(app: Bookstore) -> None:
    body = book_create_body()
    old_id = app.register_book(ctx(), **body).id
    app.remove_book(ctx(), old_id)
    report = run(app, body)
    assert report.created == 1
    book = app.find_book_by_isbn(body["isbn"])
    assert book is not None
    assert book.id != old_id


def test_all_or_nothing_lists_every_bad_row_and_writes_nothing(app: Bookstore) -> None:
    before = event_count(app)
    good = book_create_body()
    with pytest.raises(ImportRefusedError) as refused:
        run(app, good, book_create_body(price="-1"), None, book_create_body(title=""))
    report = refused.value.report
    assert [error.number for error in report.errors] == [2, 3, 4]
    assert (report.created, report.updated, report.failed, report.rows) == (0, 0, 3, 4)
    assert event_count(app) == before
    assert app.find_book_by_isbn(good["isbn"]) is None


def test_partial_applies_the_valid_rows_and_reports_the_others(app: Bookstore) -> None:
    good = [book_create_body() for _ in range(3)]
    report = run(app, good[0], book_create_body(isbn="123"), good[1], None, good[2], partial=True)
    assert (report.created, report.failed) == (3, 2)
    assert [error.as_json()["row"] for error in report.errors] == [2, 4]
    assert report.errors[0].isbn == "123"


def test_a_repeated_isbn_is_an_error_on_every_later_row(app: Bookstore) -> None:
    first = book_create_body()
    again = book_create_body(isbn=first["isbn"], title="Another")
    with pytest.raises(ImportRefusedError) as refused:
        run(app, first, book_create_body(), again)
    (error,) = refused.value.report.errors
    assert error.as_json() == {
        "row": 3,
        "isbn": first["isbn"],
        "errors": [
            {
                "loc": ["isbn"],
                "msg": f"ISBN {first['isbn']} is already in row 1 of this file",
                "type": "duplicate",
            }
        ],
    }
    report = run(app, first, again, partial=True)
    assert (report.created, report.failed) == (1, 1)
    book = app.find_book_by_isbn(first["isbn"])
    assert book is not None
    assert book.title == first["title"]


def test_more_rows_than_the_limit_are_refused_before_anything_is_written(app: Bookstore) -> None:
    with pytest.raises(TooManyRowsError):
        run(app, *[book_create_body() for _ in range(4)], max_rows=3)
    assert event_count(app) == 0


def test_progress_is_told_per_phase(app: Bookstore) -> None:
    seen: list[tuple[str, int, int | None]] = []
    run(
        app,
        *[book_create_body() for _ in range(5)],
        batch_size=2,
        progress=lambda *a: seen.append(a),
    )
    assert seen[0] == ("checking", 5, 5)
    assert seen[1:] == [("importing", 2, 5), ("importing", 4, 5), ("importing", 5, 5)]


class LosingSecondBatch(BookBatchImporter):
    """Loses every race on its second batch, as if another writer kept changing it."""

    calls = 0

    def import_batch(self, ctx: CommandContext, rows: Sequence[BookRow]) -> BatchOutcome:
        self.calls += 1
        if self.calls == 2:
            raise ConcurrencyError("lost")
        return super().import_batch(ctx, rows)


def test_a_batch_that_keeps_losing_races_stops_all_or_nothing_and_says_what_was_applied(
    app: Bookstore,
) -> None:
    bodies = [book_create_body() for _ in range(5)]
    with pytest.raises(ImportInterruptedError) as interrupted:
        import_books(LosingSecondBatch(app), ctx(), source(*bodies), batch_size=2)
    assert interrupted.value.first_unapplied_row == 3
    assert interrupted.value.report.created == 2
    # Importing again finishes the job; the rows already applied change nothing.
    report = run(app, *bodies)
    assert (report.created, report.updated) == (3, 0)


def test_with_partial_a_batch_that_keeps_losing_races_is_reported_and_the_rest_applies(
    app: Bookstore,
) -> None:
    bodies = [book_create_body() for _ in range(5)]
    report = import_books(
        LosingSecondBatch(app), ctx(), source(*bodies), batch_size=2, partial=True
    )
    assert (report.created, report.failed) == (3, 2)
    assert [(e.number, e.issues[0].kind) for e in report.errors] == [
        (3, "conflict"),
        (4, "conflict"),
    ]


def test_two_batches_at_a_time_import_the_same_books(app: Bookstore) -> None:
    bodies = [book_create_body() for _ in range(9)]
    report = run(app, *bodies, batch_size=2, concurrency=2)
    assert (report.created, report.updated, report.failed) == (9, 0, 0)
    assert report.position == app.recorder.max_notification_id()
    assert all(app.find_book_by_isbn(body["isbn"]) is not None for body in bodies)


def test_two_at_a_time_a_batch_that_keeps_losing_stops_the_import_there(app: Bookstore) -> None:
    bodies = [book_create_body() for _ in range(9)]
    with pytest.raises(ImportInterruptedError) as interrupted:
        import_books(LosingSecondBatch(app), ctx(), source(*bodies), batch_size=2, concurrency=2)
    assert interrupted.value.first_unapplied_row == 3
    assert run(app, *bodies).failed == 0
    assert all(app.find_book_by_isbn(body["isbn"]) is not None for body in bodies)

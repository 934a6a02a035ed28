"""The Book aggregate: registration rules, details, stock, removal."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest

from tests.factories import book_payload
from write_model.book import AUTHOR_MAX, CATEGORY_MAX, TITLE_MAX, Book
from write_model.errors import BookUnavailableError, InsufficientStockError, InvalidValueError


def event_names(book: Book) -> list[str]:
    return [type(e).__name__ for e in book.collect_events()]


def test_a_registered_book_keeps_its_details_and_is_live() -> None:
    book = Book.register(
        **book_payload(title="  Dune ", author="Frank Herbert", price="12.50", category="sf")
    )

    assert (book.title, book.author, book.category) == ("Dune", "Frank Herbert", "sf")
    assert book.price == Decimal("12.50")
    assert book.stock == 10
    assert book.removed is False
    assert event_names(book) == ["Registered"]


@pytest.mark.parametrize(
    ("field", "limit"), [("title", TITLE_MAX), ("author", AUTHOR_MAX), ("category", CATEGORY_MAX)]
)
def test_text_fields_must_be_non_empty_and_within_their_length(field: str, limit: int) -> None:
    assert getattr(Book.register(**book_payload(**{field: "x" * limit})), field) == "x" * limit
    for bad in ["", "   ", "x" * (limit + 1)]:
        with pytest.raises(InvalidValueError) as caught:
            Book.register(**book_payload(**{field: bad}))
        assert caught.value.field == field


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("9780306406157", "9780306406157"),
        ("978-0-306-40615-7", "9780306406157"),
        (" 978 0 306 40615 7 ", "9780306406157"),
        ("0-306-40615-2", "9780306406157"),
        ("080442957X", "9780804429573"),
        ("080442957x", "9780804429573"),
        ("979-10-343-0447-9", "9791034304479"),
    ],
)
def test_an_isbn_is_stored_as_its_isbn13(given: str, stored: str) -> None:
    assert Book.register(**book_payload(isbn=given)).isbn == stored


@pytest.mark.parametrize(
    "isbn",
    [
        "9780306406158",  # wrong check digit
        "0-306-40615-3",  # wrong ISBN-10 check digit
        "9770306406155",  # valid EAN-13 but not a book prefix
        "030640615",  # too short
        "97803064061577",  # too long
        "X306406152",  # X only allowed last
        "978030640615X",
        "",
        "isbn",
    ],
)
def test_an_isbn_with_a_bad_checksum_or_shape_is_refused(isbn: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        Book.register(**book_payload(isbn=isbn))
    assert caught.value.field == "isbn"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (0, "0.00"),
        ("0", "0.00"),
        (12, "12.00"),
        ("12.5", "12.50"),
        (Decimal("7.99"), "7.99"),
        ("1.000", "1.00"),
        ("999999.99", "999999.99"),
    ],
)
def test_a_price_is_kept_with_two_decimal_places(given: object, stored: str) -> None:
    price = Book.register(**book_payload(price=given)).price
    assert price == Decimal(stored)
    assert str(price) == stored


@pytest.mark.parametrize(
    "price", ["-0.01", -1, "1000000", "1000000.00", "1.005", "0.001", "abc", "NaN", "Infinity"]
)
def test_a_price_out_of_range_or_finer_than_a_cent_is_refused(price: object) -> None:
    with pytest.raises(InvalidValueError) as caught:
        Book.register(**book_payload(price=price))
    assert caught.value.field == "price"


@pytest.mark.parametrize("stock", [-1, 1.5, True, "3"])
def test_stock_must_be_a_whole_number_not_below_zero(stock: object) -> None:
    with pytest.raises(InvalidValueError):
        Book.register(**book_payload(stock=stock))
    assert Book.register(**book_payload(stock=0)).stock == 0


def test_any_subset_of_details_can_be_changed_in_one_event() -> None:
    book = Book.register(**book_payload(title="Old", price="10.00"))
    book.collect_events()

    assert book.change_details(price="11", category="history") is True
    assert (book.title, book.price, book.category) == ("Old", Decimal("11.00"), "history")
    events = book.collect_events()
    assert [type(e).__name__ for e in events] == ["DetailsChanged"]
    assert events[0].price == Decimal("11.00")  # type: ignore[attr-defined]
    assert events[0].title is None  # type: ignore[attr-defined]

    assert book.change_details(isbn="0-306-40615-2", title="New") is True
    assert (book.title, book.isbn) == ("New", "9780306406157")


def test_changing_details_to_what_they_already_are_records_nothing() -> None:
    book = Book.register(**book_payload(title="Same", price="10.00", isbn="9780306406157"))
    book.collect_events()

    assert book.change_details() is False
    assert book.change_details(title=" Same ", price="10", isbn="0306406152") is False
    assert book.collect_events() == []


def test_changed_details_are_validated_like_registration() -> None:
    book = Book.register(**book_payload())
    book.collect_events()
    with pytest.raises(InvalidValueError):
        book.change_details(price="-1")
    with pytest.raises(InvalidValueError):
        book.change_details(isbn="9780306406158")
    with pytest.raises(InvalidValueError):
        book.change_details(title=" ")
    assert book.collect_events() == []


def test_restocking_adds_copies() -> None:
    book = Book.register(**book_payload(stock=2))
    book.restock(5)
    assert book.stock == 7
    for bad in [0, -3, True]:
        with pytest.raises(InvalidValueError):
            book.restock(bad)
    assert book.stock == 7


def test_correcting_the_stock_sets_it_and_records_nothing_when_already_right() -> None:
    book = Book.register(**book_payload(stock=4))
    book.collect_events()
    assert book.correct_stock(1) is True
    assert book.stock == 1
    assert book.correct_stock(1) is False
    assert event_names(book) == ["StockCorrected"]
    with pytest.raises(InvalidValueError):
        book.correct_stock(-1)
    assert book.stock == 1


def test_a_book_is_never_reserved_below_zero() -> None:
    book = Book.register(**book_payload(stock=3))
    order_id = uuid4()

    with pytest.raises(InsufficientStockError) as caught:
        book.reserve(4, order_id)
    [gap] = caught.value.shortfalls
    assert (gap.book_id, gap.requested, gap.available) == (book.id, 4, 3)
    assert book.stock == 3

    book.reserve(3, order_id)
    assert book.stock == 0
    with pytest.raises(InsufficientStockError):
        book.reserve(1, order_id)
    assert book.stock == 0


def test_released_copies_come_back_into_stock() -> None:
    book = Book.register(**book_payload(stock=3))
    order_id = uuid4()
    book.reserve(2, order_id)
    book.release(2, order_id)
    assert book.stock == 3
    events = book.collect_events()
    assert [type(e).__name__ for e in events] == ["Registered", "StockReserved", "StockReleased"]
    assert events[2].order_id == order_id  # type: ignore[attr-defined]


def test_a_removed_book_takes_no_further_command() -> None:
    book = Book.register(**book_payload(stock=3))
    book.remove()
    assert book.removed is True
    book.collect_events()

    commands = [
        lambda: book.change_details(title="Other"),
        lambda: book.restock(1),
        lambda: book.correct_stock(5),
        lambda: book.reserve(1, uuid4()),
        book.remove,
    ]
    for command in commands:
        with pytest.raises((BookUnavailableError, InsufficientStockError)):
            command()
    assert book.collect_events() == []
    assert book.stock == 3
    gap = book.shortfall(1)
    assert gap is not None
    assert gap.available == 0


def test_copies_of_a_cancelled_order_go_back_even_onto_a_removed_book() -> None:
    book = Book.register(**book_payload(stock=3))
    order_id = uuid4()
    book.reserve(1, order_id)
    book.remove()
    book.release(1, order_id)
    assert book.stock == 3

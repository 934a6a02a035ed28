"""A book never holds more copies than `book_listing.stock` (a 32-bit INTEGER) can count.

A larger stock would be recorded in the log and then stop the projection at that event
for good, so every command that sets or adds to a stock refuses to pass the cap.
"""

from __future__ import annotations

from uuid import uuid4

import pytest

from tests.factories import book_payload
from write_model.book import Book
from write_model.errors import ConflictError, InvalidValueError
from write_model.values import MAX_STOCK

INT32_MAX = 2**31 - 1


def test_the_cap_is_what_a_32_bit_integer_column_holds() -> None:
    assert MAX_STOCK == INT32_MAX


def test_a_book_is_registered_with_at_most_the_cap() -> None:
    assert Book.register(**book_payload(stock=INT32_MAX)).stock == INT32_MAX
    with pytest.raises(InvalidValueError) as caught:
        Book.register(**book_payload(stock=INT32_MAX + 1))
    assert caught.value.field == "stock"
    assert str(INT32_MAX) in caught.value.message


def test_a_stock_is_corrected_to_at_most_the_cap() -> None:
    book = Book.register(**book_payload(stock=1))
    with pytest.raises(InvalidValueError) as caught:
        book.correct_stock(INT32_MAX + 1)
    assert caught.value.field == "stock"
    assert book.stock == 1
    assert book.correct_stock(INT32_MAX) is True


def test_restocking_past_the_cap_is_refused_and_records_nothing() -> None:
    book = Book.register(**book_payload(stock=INT32_MAX - 5))
    book.collect_events()
    with pytest.raises(InvalidValueError) as caught:
        book.restock(6)
    assert caught.value.field == "quantity"
    assert "5" in caught.value.message  # how many copies still fit
    assert book.stock == INT32_MAX - 5
    assert book.collect_events() == []
    book.restock(5)
    assert book.stock == INT32_MAX


def test_a_release_past_the_cap_is_refused_and_records_nothing() -> None:
    """Only after staff set the stock near the cap while an order held copies."""
    book = Book.register(**book_payload(stock=10))
    order_id = uuid4()
    book.reserve(4, order_id)
    book.correct_stock(INT32_MAX - 3)
    book.collect_events()
    with pytest.raises(ConflictError) as caught:
        book.release(4, order_id)
    assert book.title in str(caught.value)
    assert book.stock == INT32_MAX - 3
    assert book.collect_events() == []
    book.correct_stock(100)
    book.release(4, order_id)
    assert book.stock == 104

"""One import row, checked by the rules of `POST /books` (no database)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.factories import book_create_body, random_isbn10
from write_model.book_rows import MAX_STOCK, BookRow, RawRow, RowError, validate_row


def json_row(number: int = 1, **overrides: Any) -> RawRow:
    return RawRow(number, book_create_body(**overrides))


def csv_row(number: int = 1, **overrides: Any) -> RawRow:
    body = {key: str(value) for key, value in book_create_body(**overrides).items()}
    return RawRow(number, body, textual=True)


def issues_of(result: BookRow | RowError) -> dict[str, str]:
    assert isinstance(result, RowError), result
    return {str(issue.as_json()["loc"]): issue.kind for issue in result.issues}


def test_a_valid_json_row_becomes_a_book_row_with_a_normalised_isbn() -> None:
    isbn10 = random_isbn10()
    result = validate_row(json_row(4, isbn=isbn10, price="12.5", title="  Dune  "))
    assert isinstance(result, BookRow)
    assert (result.number, result.title, result.price) == (4, "Dune", Decimal("12.50"))
    assert len(result.isbn) == 13
    assert result.isbn.startswith("978")


def test_a_csv_row_reads_its_stock_from_text_and_an_empty_stock_cell_means_not_given() -> None:
    assert validate_row(csv_row(stock=7)).stock == 7  # type: ignore[union-attr]
    assert validate_row(csv_row(stock="")).stock is None  # type: ignore[union-attr]


def test_a_json_row_without_stock_leaves_it_unsaid_but_a_string_stock_is_refused() -> None:
    body = book_create_body()
    del body["stock"]
    assert validate_row(RawRow(1, body)).stock is None  # type: ignore[union-attr]
    assert issues_of(validate_row(json_row(stock="7"))) == {"['stock']": "int_type"}
    assert issues_of(validate_row(json_row(stock=None))) == {"['stock']": "int_type"}


def test_every_bad_field_of_a_row_is_listed_at_once() -> None:
    result = validate_row(
        json_row(title="", author=None, isbn="978-0-00-000000-1", price="1.001", stock=-1)
    )
    assert issues_of(result) == {
        "['title']": "value_error",
        "['author']": "string_type",
        "['isbn']": "value_error",
        "['price']": "value_error",
        "['stock']": "value_error",
    }
    assert isinstance(result, RowError)
    assert result.isbn == "978-0-00-000000-1"


def test_a_missing_field_is_named() -> None:
    body = book_create_body()
    del body["category"]
    assert issues_of(validate_row(RawRow(2, body))) == {"['category']": "missing"}


@pytest.mark.parametrize(
    "title",
    ["nul\x00inside", "tab\tinside", "line\nbreak", "del\x7f", "lone \ud800 surrogate", "\udcff"],
)
def test_control_characters_and_lone_surrogates_make_an_invalid_row(title: str) -> None:
    result = validate_row(json_row(title=title))
    assert issues_of(result) == {"['title']": "value_error"}
    assert isinstance(result, RowError)
    result.as_json()  # and it can be said in JSON


@pytest.mark.parametrize(
    ("price", "ok"),
    [
        ("0", True),
        ("999999.99", True),
        ("12.500", True),
        (Decimal("12.5"), True),
        (12, True),
        ("1000000", False),
        ("-1", False),
        ("1e3", False),
        ("12.", False),
        ("NaN", False),
        (Decimal("Infinity"), False),
        (True, False),
        (None, False),
        ("", False),
        ("1" * 5000, False),
    ],
)
def test_prices_follow_the_contract(price: object, ok: bool) -> None:
    result = validate_row(json_row(price=price))
    assert isinstance(result, BookRow) is ok


@pytest.mark.parametrize(
    ("stock", "ok"), [("0", True), (str(MAX_STOCK), True), (str(MAX_STOCK + 1), False)]
)
def test_stock_fits_the_read_table(stock: str, ok: bool) -> None:
    assert isinstance(validate_row(csv_row(stock=stock)), BookRow) is ok


def test_an_unreadable_row_keeps_its_reason() -> None:
    result = validate_row(RawRow(3, None, "must be a JSON object of book fields"))
    assert isinstance(result, RowError)
    assert result.as_json() == {
        "row": 3,
        "isbn": None,
        "errors": [
            {"loc": [], "msg": "must be a JSON object of book fields", "type": "value_error"}
        ],
    }


def test_a_long_bad_isbn_is_quoted_back_cut_short() -> None:
    result = validate_row(json_row(isbn="9" * 1000))
    assert isinstance(result, RowError)
    assert result.isbn is not None
    assert len(result.isbn) <= 40

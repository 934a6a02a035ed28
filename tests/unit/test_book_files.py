"""Reading catalogue files as rows: CSV with a header, or a JSON array, as a stream."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest

from adapters.book_files import (
    MAX_JSON_ELEMENT_CHARS,
    MalformedJsonError,
    MissingColumnsError,
    NotAnArrayError,
    read_csv_rows,
    read_json_rows,
    sniff_format,
)
from write_model.book_rows import RawRow

HEADER = "title,author,isbn,price,stock,category\n"


def csv_rows(text: str | bytes) -> list[RawRow]:
    data = text.encode() if isinstance(text, str) else text
    return list(read_csv_rows(io.BytesIO(data)))


def json_rows(text: str | bytes) -> list[RawRow]:
    data = text.encode() if isinstance(text, str) else text
    return list(read_json_rows(io.BytesIO(data)))


def test_csv_rows_count_from_one_after_the_header_and_skip_blank_lines() -> None:
    rows = csv_rows(
        HEADER + "Dune,Frank Herbert,9780441172719,9.99,3,fiction\n\n,,,,,\nB,A,1,2,,c\n"
    )
    assert [row.number for row in rows] == [1, 2]
    assert rows[0].fields == {
        "title": "Dune",
        "author": "Frank Herbert",
        "isbn": "9780441172719",
        "price": "9.99",
        "stock": "3",
        "category": "fiction",
    }
    assert all(row.textual for row in rows)


def test_csv_header_columns_match_in_any_order_and_case_and_extra_columns_are_ignored() -> None:
    rows = csv_rows("\ufeffID, Category ,STOCK,price,isbn,author,title\n7,c,1,2.00,i,a,t\n")
    assert rows[0].fields == {
        "title": "t",
        "author": "a",
        "isbn": "i",
        "price": "2.00",
        "stock": "1",
        "category": "c",
    }


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("title,author,isbn,price,category\n", ["stock"]),
        ("", ["title", "author", "isbn", "price", "stock", "category"]),
        ("title,author,isbn,price,stock,category,isbn\n", ["isbn"]),
    ],
)
def test_a_csv_header_lacking_or_repeating_a_column_is_refused(
    text: str, missing: list[str]
) -> None:
    with pytest.raises(MissingColumnsError) as raised:
        csv_rows(text)
    assert raised.value.missing == missing


def test_a_csv_record_of_the_wrong_width_or_bad_bytes_is_one_bad_row() -> None:
    rows = csv_rows(
        HEADER.encode()
        + b"a,b,c\n"
        + b"T\xff,A,9780441172719,1,1,c\n"
        + b'T,"'
        + b"x" * 200_000
        + b'",1,1,1,c\n'
        + b"T,A,9780441172719,1,1,c\n"
    )
    assert [(row.number, row.problem is None) for row in rows] == [
        (1, False),
        (2, True),
        (3, False),
        (4, True),
    ]
    assert rows[1].fields is not None
    assert rows[1].fields["title"] == "T\udcff"


def test_json_rows_are_the_array_elements_with_exact_numbers() -> None:
    rows = json_rows('[{"price": 12.10, "stock": 3}, 7, {"price": 1e2}]')
    assert [row.number for row in rows] == [1, 2, 3]
    assert rows[0].fields == {"price": Decimal("12.10"), "stock": 3}
    assert rows[1].fields is None
    assert rows[2].fields == {"price": Decimal("1E+2")}
    assert not rows[0].textual
    assert json_rows(" [ ] ") == []


def test_a_json_array_is_read_across_chunk_boundaries() -> None:
    items = [{"title": f"T{i}" * (i % 50), "price": i, "stock": 10**i % 997} for i in range(3000)]
    rows = json_rows(json.dumps(items, indent=1))
    assert [row.fields for row in rows] == items


def test_an_escaped_lone_surrogate_is_kept_for_the_row_check_to_refuse() -> None:
    assert json_rows('[{"title": "\\ud800"}]')[0].fields == {"title": "\ud800"}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"title": "x"}', NotAnArrayError),
        ("3", NotAnArrayError),
        ("", MalformedJsonError),
        ("[1, 2", MalformedJsonError),
        ("[1 2]", MalformedJsonError),
        ("[1] [2]", MalformedJsonError),
        ("[NaN]", MalformedJsonError),
        (b'["\xff"]', MalformedJsonError),
        ("[" + '"' + "x" * (MAX_JSON_ELEMENT_CHARS + 10) + '"]', MalformedJsonError),
    ],
)
def test_a_body_that_is_not_a_json_array_is_refused(
    text: str | bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        json_rows(text)


def test_the_caller_s_file_stays_open_to_be_read_again() -> None:
    data = io.BytesIO((HEADER + "T,A,9780441172719,1,1,c\n").encode())
    assert len(list(read_csv_rows(data))) == 1
    data.seek(0)
    assert len(list(read_csv_rows(data))) == 1


@pytest.mark.parametrize(
    ("head", "expected"), [(b"  [", "json"), (b"\xef\xbb\xbf{", "json"), (b"title,", "csv")]
)
def test_the_format_of_an_upload_is_sniffed_from_its_first_byte(head: bytes, expected: str) -> None:
    data = io.BytesIO(head + b" rest")
    assert sniff_format(data) == expected
    assert data.tell() == 0

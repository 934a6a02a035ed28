"""POST /books/import over HTTP, on SQLite and PostgreSQL: CSV, multipart and JSON bodies."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from api.routers.book_import import MAX_IMPORT_BYTES, MAX_IMPORT_ROWS
from bookstore.bootstrap import Container
from tests.api.conftest import Account, assert_problem, new_account
from tests.factories import book_create_body

COLUMNS = ["title", "author", "isbn", "price", "stock", "category"]


@pytest.fixture
def staff(client: TestClient, container: Container) -> Account:
    return new_account(client, container, "staff")


def as_csv(*bodies: dict[str, Any], columns: list[str] = COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(bodies)
    return out.getvalue()


def post_csv(client: TestClient, account: Account, text: str | bytes, **params: str) -> Response:
    response: Response = client.post(
        "/books/import",
        content=text.encode() if isinstance(text, str) else text,
        headers={**account.headers, "Content-Type": "text/csv"},
        params=params,
    )
    return response


def head(container: Container) -> int:
    return container.write_app.recorder.max_notification_id() or 0


def stored(container: Container, body: dict[str, Any]) -> dict[str, Any] | None:
    """The book the write model holds under the body's ISBN, as the body spells it."""
    book = container.write_app.find_book_by_isbn(body["isbn"])
    if book is None:
        return None
    return {
        "title": book.title,
        "author": book.author,
        "isbn": book.isbn,
        "price": str(book.price),
        "stock": book.stock,
        "category": book.category,
    }


def test_a_csv_body_creates_every_book_and_answers_the_report(
    client: TestClient, container: Container, staff: Account
) -> None:
    bodies = [book_create_body() for _ in range(3)]
    response = post_csv(client, staff, as_csv(*bodies))
    assert response.status_code == 200, response.text
    assert response.json() == {"created": 3, "updated": 0, "failed": 0, "errors": []}
    assert int(response.headers["X-Event-Position"]) == head(container)
    for body in bodies:
        assert stored(container, body) == body


def test_a_multipart_upload_of_a_csv_or_json_file_is_imported(
    client: TestClient, container: Container, staff: Account
) -> None:
    csv_books = [book_create_body() for _ in range(2)]
    json_books = [book_create_body() for _ in range(2)]
    sniffed = book_create_body()
    uploads = [
        ("books.csv", as_csv(*csv_books).encode(), "text/csv", 2),
        ("books.json", json.dumps(json_books).encode(), "application/json", 2),
        ("unnamed", json.dumps([sniffed]).encode(), "application/octet-stream", 1),
    ]
    for name, data, media_type, created in uploads:
        response = client.post(
            "/books/import", files={"file": (name, data, media_type)}, headers=staff.headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["created"] == created
    for body in [*csv_books, *json_books, sniffed]:
        assert stored(container, body) == body


def test_a_json_array_of_create_bodies_is_imported_with_exact_prices(
    client: TestClient, container: Container, staff: Account
) -> None:
    body = book_create_body(price="0.10")
    raw = json.dumps([{**body, "price": "__PRICE__"}]).replace('"__PRICE__"', "0.10")
    response = client.post(
        "/books/import",
        content=raw,
        headers={**staff.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 1
    book = container.write_app.find_book_by_isbn(body["isbn"])
    assert book is not None
    assert book.price == Decimal("0.10")


def test_all_or_nothing_answers_422_listing_every_bad_row_and_imports_nothing(
    client: TestClient, container: Container, staff: Account
) -> None:
    good = book_create_body()
    rows = [
        good,
        book_create_body(price="12.345"),
        book_create_body(isbn="978-0-00-000000-0", title=""),
        book_create_body(stock="-3"),
    ]
    before = head(container)
    response = post_csv(client, staff, as_csv(*rows))
    body: dict[str, Any] = assert_problem(response, 422, "validation-error")
    assert body["failed"] == 3
    assert (body["created"], body["updated"]) == (0, 0)
    assert [(e["row"], [i["loc"] for i in e["errors"]]) for e in body["errors"]] == [
        (2, [["price"]]),
        (3, [["title"], ["isbn"]]),
        (4, [["stock"]]),
    ]
    assert body["errors"][1]["isbn"] == "978-0-00-000000-0"
    assert head(container) == before
    assert stored(container, good) is None


def test_partial_imports_the_valid_rows_and_reports_the_others(
    client: TestClient, container: Container, staff: Account
) -> None:
    good = [book_create_body() for _ in range(2)]
    bad = book_create_body(price="free")
    response = post_csv(client, staff, as_csv(good[0], bad, good[1]), partial="true")
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["created"], report["updated"], report["failed"]) == (2, 0, 1)
    assert report["errors"] == [
        {
            "row": 2,
            "isbn": bad["isbn"],
            "errors": [
                {
                    "loc": ["price"],
                    "msg": "must be a decimal number such as 12.50",
                    "type": "value_error",
                }
            ],
        }
    ]
    assert "X-Event-Position" in response.headers
    assert all(stored(container, body) == body for body in good)


def test_importing_the_same_file_again_changes_nothing_and_updated_counts_real_changes(
    client: TestClient, container: Container, staff: Account
) -> None:
    bodies = [book_create_body() for _ in range(3)]
    assert post_csv(client, staff, as_csv(*bodies)).status_code == 200
    before = head(container)

    again = post_csv(client, staff, as_csv(*bodies))
    assert again.status_code == 200, again.text
    assert again.json() == {"created": 0, "updated": 0, "failed": 0, "errors": []}
    assert "X-Event-Position" not in again.headers
    assert head(container) == before

    bodies[1] = {**bodies[1], "price": "3.33"}
    changed = post_csv(client, staff, as_csv(*bodies, book_create_body()))
    assert changed.json() == {"created": 1, "updated": 1, "failed": 0, "errors": []}
    assert stored(container, bodies[1]) == bodies[1]


def test_a_repeated_isbn_in_one_file_is_an_error_on_the_later_row(
    client: TestClient, staff: Account
) -> None:
    first = book_create_body()
    response = post_csv(client, staff, as_csv(first, {**first, "title": "Other"}))
    body: dict[str, Any] = assert_problem(response, 422, "validation-error")
    assert [(e["row"], e["errors"][0]["type"]) for e in body["errors"]] == [(2, "duplicate")]


def test_a_csv_header_lacking_a_column_is_422(client: TestClient, staff: Account) -> None:
    text = as_csv(book_create_body(), columns=["title", "author", "isbn", "price", "category"])
    body: dict[str, Any] = assert_problem(post_csv(client, staff, text), 422, "validation-error")
    assert body["errors"] == [{"loc": ["body", "header"], "msg": body["detail"], "type": "missing"}]
    assert "stock" in str(body["detail"])


def rows_of(count: int) -> Iterator[bytes]:
    yield (",".join(COLUMNS) + "\n").encode()
    row = b"T,A,9780441172719,1.00,1,c\n"
    for _ in range(count):
        yield row


def test_more_than_100000_rows_is_413_and_imports_nothing(
    client: TestClient, container: Container, staff: Account
) -> None:
    before = head(container)
    response = post_csv(client, staff, b"".join(rows_of(MAX_IMPORT_ROWS + 1)))
    assert_problem(response, 413, "payload-too-large")
    assert head(container) == before


def test_a_body_over_50_mib_is_413_whether_its_length_is_declared_or_streamed(
    client: TestClient, staff: Account
) -> None:
    too_big = b"x" * (MAX_IMPORT_BYTES + 1)
    declared = post_csv(client, staff, too_big)
    assert_problem(declared, 413, "payload-too-large")

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(too_big), 1024 * 1024):
            yield too_big[start : start + 1024 * 1024]

    streamed = client.post(
        "/books/import",
        content=chunks(),
        headers={**staff.headers, "Content-Type": "text/csv"},
    )
    assert_problem(streamed, 413, "payload-too-large")


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
        "text/csv; charset=latin-1",
    ],
)
def test_other_content_types_are_415(
    client: TestClient, staff: Account, content_type: str | None
) -> None:
    headers = dict(staff.headers)
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/books/import", content=as_csv(book_create_body()), headers=headers)
    assert_problem(response, 415, "unsupported-media-type")


def test_only_staff_and_admins_may_import(
    client: TestClient, container: Container, staff: Account
) -> None:
    text = as_csv(book_create_body())
    anonymous = client.post("/books/import", content=text, headers={"Content-Type": "text/csv"})
    assert_problem(anonymous, 401, "authentication-required")
    customer = new_account(client, container, "customer")
    assert_problem(post_csv(client, customer, text), 403, "forbidden")
    admin = new_account(client, container, "admin")
    assert post_csv(client, admin, text).status_code == 200
    assert post_csv(client, staff, as_csv(book_create_body())).status_code == 200


@pytest.mark.parametrize(
    ("raw", "kind", "status"),
    [
        (b'[{"title": "x"', "malformed-json", 400),
        (b'["\xff"]', "malformed-json", 400),
        (b"", "malformed-json", 400),
        (b'{"title": "x"}', "validation-error", 422),
    ],
)
def test_a_json_body_that_is_not_an_array_of_objects_is_refused(
    client: TestClient, staff: Account, raw: bytes, kind: str, status: int
) -> None:
    response = client.post(
        "/books/import",
        content=raw,
        headers={**staff.headers, "Content-Type": "application/json"},
    )
    assert_problem(response, status, kind)


def test_hostile_text_makes_invalid_rows_never_a_500(
    client: TestClient, container: Container, staff: Account
) -> None:
    before = head(container)
    json_body = (
        '[{"title": "a\\u0000b", "author": "A", "isbn": "9780441172719", "price": 1,'
        ' "category": "c"}, {"title": "\\ud800", "author": "A", "isbn": "9780441172719",'
        ' "price": 1, "category": "c"}, 5]'
    )
    response = client.post(
        "/books/import",
        content=json_body,
        headers={**staff.headers, "Content-Type": "application/json"},
        params={"partial": "true"},
    )
    assert response.status_code == 200, response.text
    assert [e["row"] for e in response.json()["errors"]] == [1, 2, 3]

    latin1 = as_csv(book_create_body(title="Café")).encode().replace("é".encode(), b"\xe9")
    body: dict[str, Any] = assert_problem(post_csv(client, staff, latin1), 422, "validation-error")
    assert body["errors"][0]["errors"][0]["loc"] == ["title"]
    assert head(container) == before


def test_a_multipart_body_without_a_file_part_is_422(client: TestClient, staff: Account) -> None:
    csv_file = ("books.csv", as_csv(book_create_body()).encode(), "text/csv")
    wrong_field = client.post("/books/import", files={"books": csv_file}, headers=staff.headers)
    body: dict[str, Any] = assert_problem(wrong_field, 422, "validation-error")
    assert body["errors"][0]["loc"] == ["body", "file"]
    not_a_file = client.post(
        "/books/import", data={"file": "title,author"}, files={"x": csv_file}, headers=staff.headers
    )
    assert_problem(not_a_file, 422, "validation-error")


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "PATCH", "DELETE"])
def test_any_other_method_on_the_import_is_a_405_allowing_post(
    client: TestClient, container: Container, staff: Account, method: str
) -> None:
    """/books/import is the import, never a book whose id is "import" (once 415 or 422)."""
    before = head(container)
    response = client.request(
        method,
        "/books/import",
        content=json.dumps([book_create_body()]),
        headers={**staff.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 405, response.text
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert allowed == {"POST", "OPTIONS"}
    if method != "HEAD":
        assert_problem(response, 405, "method-not-allowed")
    options = client.options("/books/import")
    assert options.status_code == 204
    assert {m.strip() for m in options.headers["allow"].split(",")} == allowed
    assert head(container) == before


def test_the_history_of_a_book_called_import_is_still_a_bad_id(
    client: TestClient, staff: Account
) -> None:
    response = client.get("/books/import/history", headers=staff.headers)
    body: dict[str, Any] = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["loc"] == ["path", "book_id"]

"""/books over HTTP: browse, read one (now or as of a time), add, change, remove, history.

Every test runs on SQLite and on PostgreSQL (the `database_url` fixture behind `client`).
Reads come from the `book_listing` projection, so a test that reads its own writes sends
the command's `X-Event-Position` back as `X-Min-Event-Position`, as a client would.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from bookstore.bootstrap import Container
from tests.api.conftest import Account, assert_problem, new_account
from tests.factories import book_create_body, book_payload, ctx, random_isbn10, random_isbn13

JSON = {"Content-Type": "application/json"}


# ------------------------------------------------------------------------ helpers


def create(client: TestClient, staff: Account, **overrides: Any) -> Response:
    response: Response = client.post(
        "/books", json=book_create_body(**overrides), headers=staff.headers
    )
    assert response.status_code == 201, response.text
    return response


def position_of(response: Response) -> int:
    return int(response.headers["x-event-position"])


def read(client: TestClient, book_id: str, after: int, **params: Any) -> Response:
    response: Response = client.get(
        f"/books/{book_id}", params=params, headers={"X-Min-Event-Position": str(after)}
    )
    return response


def locations(problem: dict[str, object]) -> list[Any]:
    """The `loc` of each error a 422 problem lists."""
    errors = problem["errors"]
    assert isinstance(errors, list)
    return [error["loc"] for error in errors]


def listing(client: TestClient, after: int, **params: Any) -> dict[str, Any]:
    response = client.get("/books", params=params, headers={"X-Min-Event-Position": str(after)})
    assert response.status_code == 200, response.text
    assert int(response.headers["x-projection-position"]) >= after
    return dict(response.json())


def seeded(container: Container, category: str, *books: dict[str, Any]) -> tuple[list[str], int]:
    """Books registered through the write model (fast); their ids and the head after."""
    app = container.write_app
    ids = [str(app.register_book(ctx(), **book_payload(category=category, **b)).id) for b in books]
    return ids, app.head()


def a_category() -> str:
    return f"cat-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def staff(client: TestClient, container: Container) -> Account:
    return new_account(client, container, "staff")


@pytest.fixture
def admin(client: TestClient, container: Container) -> Account:
    return new_account(client, container, "admin")


# ------------------------------------------------------------------------ create and read


def test_staff_add_a_book_and_get_201_with_location_etag_and_position(
    client: TestClient, staff: Account
) -> None:
    isbn10 = random_isbn10()
    hyphenated = f"{isbn10[0]}-{isbn10[1:4]}-{isbn10[4:9]}-{isbn10[9]}"
    response = client.post(
        "/books",
        json=book_create_body(
            title="  Dune  ", author="Frank Herbert", isbn=hyphenated, price=12.5, stock=3
        ),
        headers=staff.headers,
    )
    assert response.status_code == 201, response.text
    book = response.json()
    assert response.headers["location"] == f"/books/{book['id']}"
    assert response.headers["etag"] == '"1"'
    assert position_of(response) > 0
    assert book["title"] == "Dune"
    assert book["price"] == "12.50"
    assert book["stock"] == 3
    assert len(book["isbn"]) == 13
    assert book["isbn"].startswith("978")
    assert book["isbn"][3:12] == isbn10[:9]
    assert set(book) == {
        "id",
        "title",
        "author",
        "isbn",
        "price",
        "stock",
        "category",
        "created_at",
        "updated_at",
    }
    assert book["created_at"].endswith("Z")


def test_stock_defaults_to_zero(client: TestClient, staff: Account) -> None:
    body = book_create_body()
    del body["stock"]
    response = client.post("/books", json=body, headers=staff.headers)
    assert response.status_code == 201, response.text
    assert response.json()["stock"] == 0


def test_the_next_read_that_asks_for_the_position_sees_the_new_book_with_its_etag(
    client: TestClient, staff: Account
) -> None:
    created = create(client, staff)
    response = read(client, created.json()["id"], position_of(created))
    assert response.status_code == 200, response.text
    assert response.json() == created.json()
    assert response.headers["etag"] == '"1"'
    assert int(response.headers["x-projection-position"]) >= position_of(created)


def test_an_unknown_book_is_a_404_and_a_malformed_id_a_422(client: TestClient) -> None:
    assert_problem(client.get(f"/books/{uuid.uuid4()}"), 404, "not-found")
    assert_problem(client.get("/books/not-a-uuid"), 422, "validation-error")


def test_a_second_book_with_the_same_isbn_is_a_409_whatever_its_spelling(
    client: TestClient, staff: Account
) -> None:
    isbn10 = random_isbn10()
    create(client, staff, isbn=isbn10)
    again = client.post(
        "/books",
        json=book_create_body(isbn=f" {isbn10[:1]}-{isbn10[1:]} "),
        headers=staff.headers,
    )
    assert_problem(again, 409, "isbn-taken")


INVALID_BODIES = [
    ("title", ""),
    ("title", "   "),
    ("title", "x" * 501),
    ("title", "line\nbreak"),
    ("title", "nul\x00"),
    ("author", ""),
    ("author", "a" * 301),
    ("category", ""),
    ("category", "c" * 101),
    ("isbn", "978-0-441-17271-0"),  # wrong check digit
    ("isbn", "12345"),
    ("isbn", "9" * 40),
    ("price", -1),
    ("price", "-0.01"),
    ("price", 1_000_000),
    ("price", "1000000.00"),
    ("price", "12.345"),
    ("price", 12.345),
    ("price", "abc"),
    ("price", "NaN"),
    ("price", "1e3"),
    ("price", True),
    ("price", None),
    ("stock", -1),
    ("stock", 1.5),
    ("stock", "3"),
    ("stock", True),
]


@pytest.mark.parametrize(("field", "value"), INVALID_BODIES, ids=lambda v: repr(v)[:20])
def test_an_invalid_field_is_a_422_naming_it_and_nothing_is_created(
    client: TestClient, container: Container, staff: Account, field: str, value: Any
) -> None:
    body = book_create_body(**{field: value})
    response = client.post("/books", json=body, headers=staff.headers)
    problem = assert_problem(response, 422, "validation-error")
    assert any(loc[:2] == ["body", field] for loc in locations(problem))
    if field != "isbn":
        assert container.write_app.find_book_by_isbn(body["isbn"]) is None


@pytest.mark.parametrize("field", ["title", "author", "isbn", "price", "category"])
def test_a_missing_field_is_a_422(client: TestClient, staff: Account, field: str) -> None:
    body = book_create_body()
    del body[field]
    problem = assert_problem(
        client.post("/books", json=body, headers=staff.headers), 422, "validation-error"
    )
    assert ["body", field] in locations(problem)


@pytest.mark.parametrize("field", ["title", "author", "category", "isbn"])
def test_a_lone_surrogate_in_text_is_a_422_not_a_500(
    client: TestClient, staff: Account, field: str
) -> None:
    raw = json.dumps(book_create_body()).replace("}", f', "{field}": "ab\\ud800cd"}}')
    response = client.post("/books", content=raw.encode(), headers={**JSON, **staff.headers})
    problem = assert_problem(response, 422, "validation-error")
    assert ["body", field] in locations(problem)


def test_a_price_number_with_more_than_two_places_is_refused_not_rounded(
    client: TestClient, staff: Account
) -> None:
    """As a float, 19.999999999999999999 would become 20.0 and pass as "20.00"."""
    raw = json.dumps(book_create_body()).replace("}", ', "price": 19.999999999999999999}')
    response = client.post("/books", content=raw.encode(), headers={**JSON, **staff.headers})
    assert_problem(response, 422, "validation-error")


@pytest.mark.parametrize(
    ("sent", "answered"),
    [
        ("0", "0.00"),
        (0, "0.00"),
        ("0.1", "0.10"),
        ("7", "7.00"),
        (19.99, "19.99"),
        ("12.500", "12.50"),  # trailing zeros are not places that carry a digit
        ("999999.99", "999999.99"),
        (999999.99, "999999.99"),
        ("1e2", None),  # exponents in strings are refused...
    ],
)
def test_prices_come_back_as_exact_two_place_strings(
    client: TestClient, staff: Account, sent: Any, answered: str | None
) -> None:
    response = client.post("/books", json=book_create_body(price=sent), headers=staff.headers)
    if answered is None:
        assert_problem(response, 422, "validation-error")
        return
    assert response.status_code == 201, response.text
    assert response.json()["price"] == answered


def test_a_json_number_in_exponent_form_is_an_exact_price(
    client: TestClient, staff: Account
) -> None:
    """...but a JSON number may use one: 1.5e1 is exactly 15."""
    raw = json.dumps(book_create_body()).replace("}", ', "price": 1.5e1}')
    response = client.post("/books", content=raw.encode(), headers={**JSON, **staff.headers})
    assert response.status_code == 201, response.text
    assert response.json()["price"] == "15.00"


def test_a_body_that_is_not_json_is_a_415_and_broken_json_a_400(
    client: TestClient, staff: Account
) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded", **staff.headers}
    assert_problem(
        client.post("/books", content=b"title=x", headers=form), 415, "unsupported-media-type"
    )
    book_id = str(uuid.uuid4())
    assert_problem(
        client.put(f"/books/{book_id}", content=b"title=x", headers=form),
        415,
        "unsupported-media-type",
    )
    assert_problem(
        client.post("/books", content=b'{"title": ', headers={**JSON, **staff.headers}),
        400,
        "malformed-json",
    )


NOT_OBJECTS = [b"1e3", b"12.5", b"7", b'"Dune"', b"true", b"null", b"[]", b'[{"title": "x"}]']


@pytest.mark.parametrize("raw", NOT_OBJECTS, ids=lambda raw: raw.decode())
def test_a_body_that_is_not_a_json_object_is_a_422_and_changes_nothing(
    client: TestClient, container: Container, staff: Account, raw: bytes
) -> None:
    """A bare number is no book: `1e3` once read as an empty change and answered 200."""
    created = create(client, staff)
    book_id = created.json()["id"]
    headers = {**JSON, **staff.headers}
    assert_problem(client.post("/books", content=raw, headers=headers), 422, "validation-error")
    response = client.put(f"/books/{book_id}", content=raw, headers=headers)
    assert_problem(response, 422, "validation-error")
    assert container.write_app.get_book(uuid.UUID(book_id)).version == 1


# ------------------------------------------------------------------------ roles


def test_only_staff_add_and_change_books_and_only_admins_remove_them(
    client: TestClient, container: Container, staff: Account
) -> None:
    customer = new_account(client, container)
    anonymous = client.post("/books", json=book_create_body())
    assert_problem(anonymous, 401, "authentication-required")
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert_problem(
        client.post("/books", json=book_create_body(), headers=customer.headers), 403, "forbidden"
    )
    book_id = create(client, staff).json()["id"]
    assert_problem(
        client.put(f"/books/{book_id}", json={"stock": 1}, headers=customer.headers),
        403,
        "forbidden",
    )
    assert_problem(client.delete(f"/books/{book_id}", headers=staff.headers), 403, "forbidden")
    assert_problem(client.delete(f"/books/{book_id}"), 401, "authentication-required")
    assert_problem(
        client.get(f"/books/{book_id}/history", headers=customer.headers), 403, "forbidden"
    )


def test_anyone_may_browse_without_a_token(client: TestClient, staff: Account) -> None:
    created = create(client, staff)
    assert read(client, created.json()["id"], position_of(created)).status_code == 200
    assert listing(client, position_of(created))["total"] >= 1


# ------------------------------------------------------------------------ change


def test_staff_change_some_fields_and_the_rest_stay(client: TestClient, staff: Account) -> None:
    created = create(client, staff, title="Old", price="5.00", stock=2)
    book = created.json()
    response = client.put(
        f"/books/{book['id']}", json={"price": "6.5", "stock": 7}, headers=staff.headers
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["title"], changed["price"], changed["stock"]) == ("Old", "6.50", 7)
    assert response.headers["etag"] == '"3"'  # details changed, then stock corrected
    assert position_of(response) > position_of(created)
    again = read(client, book["id"], position_of(response))
    assert again.json() == changed
    assert again.headers["etag"] == '"3"'


def test_if_match_with_the_current_etag_changes_the_book(
    client: TestClient, staff: Account
) -> None:
    created = create(client, staff)
    book_id = created.json()["id"]
    response = client.put(
        f"/books/{book_id}",
        json={"title": "Renamed"},
        headers={**staff.headers, "If-Match": created.headers["etag"]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "Renamed"
    assert response.headers["etag"] == '"2"'


def test_a_stale_if_match_is_a_412_and_changes_nothing(client: TestClient, staff: Account) -> None:
    created = create(client, staff, title="Original")
    book_id = created.json()["id"]
    first = client.put(
        f"/books/{book_id}",
        json={"title": "First writer"},
        headers={**staff.headers, "If-Match": '"1"'},
    )
    assert first.status_code == 200
    second = client.put(
        f"/books/{book_id}",
        json={"title": "Second writer"},
        headers={**staff.headers, "If-Match": '"1"'},
    )
    assert_problem(second, 412, "precondition-failed")
    after = read(client, book_id, position_of(first))
    assert after.json()["title"] == "First writer"
    assert after.headers["etag"] == '"2"'


def test_of_concurrent_changes_with_one_etag_exactly_one_wins(
    client: TestClient, staff: Account
) -> None:
    book_id = create(client, staff).json()["id"]

    def change(n: int) -> int:
        response = client.put(
            f"/books/{book_id}",
            json={"stock": n},
            headers={**staff.headers, "If-Match": '"1"'},
        )
        status: int = response.status_code
        return status

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = sorted(pool.map(change, range(6)))
    assert statuses == [200] + [412] * 5


@pytest.mark.parametrize(
    ("if_match", "status"),
    [
        ("*", 200),
        ('"7", "1"', 200),
        ('W/"1"', 412),  # If-Match compares strongly: a weak tag never matches
        ('"abc"', 412),  # a valid tag that is no version of ours
        ('"2"', 412),
        ("1", 422),  # not an entity tag: the client's mistake, not a changed book
        ('"1', 422),
        ("", 422),
    ],
)
def test_if_match_follows_rfc_9110(
    client: TestClient, staff: Account, if_match: str, status: int
) -> None:
    book_id = create(client, staff).json()["id"]
    response = client.put(
        f"/books/{book_id}",
        json={"stock": 42},
        headers={**staff.headers, "If-Match": if_match},
    )
    if status == 200:
        assert response.status_code == 200, response.text
        assert response.json()["stock"] == 42
    elif status == 412:
        assert_problem(response, 412, "precondition-failed")
    else:
        problem = assert_problem(response, 422, "validation-error")
        assert locations(problem) == [["header", "if-match"]]


def test_changing_to_another_books_isbn_is_a_409_and_to_a_free_one_moves_it(
    client: TestClient, container: Container, staff: Account
) -> None:
    taken = create(client, staff).json()["isbn"]
    book_id = create(client, staff).json()["id"]
    clash = client.put(f"/books/{book_id}", json={"isbn": taken}, headers=staff.headers)
    assert_problem(clash, 409, "isbn-taken")
    free = random_isbn13()
    moved = client.put(f"/books/{book_id}", json={"isbn": free}, headers=staff.headers)
    assert moved.status_code == 200, moved.text
    assert moved.json()["isbn"] == free
    found = container.write_app.find_book_by_isbn(free)
    assert found is not None
    assert str(found.id) == book_id


@pytest.mark.parametrize(
    "body",
    [{"title": None}, {"price": None}, {"stock": -3}, {"price": "1.001"}, {"title": "\x07"}],
    ids=repr,
)
def test_a_bad_change_is_a_422_and_null_is_not_leaving_a_field_out(
    client: TestClient, staff: Account, body: dict[str, Any]
) -> None:
    book_id = create(client, staff).json()["id"]
    response = client.put(f"/books/{book_id}", json=body, headers=staff.headers)
    assert_problem(response, 422, "validation-error")


def test_the_openapi_change_body_says_fields_are_optional_but_never_null(
    client: TestClient,
) -> None:
    """What the server does (null is a 422), so generated clients never offer None."""
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    operation = document["paths"]["/books/{book_id}"]["put"]
    reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    update = schemas[reference.rsplit("/", 1)[-1]]
    assert set(update["properties"]) == {"title", "author", "isbn", "price", "stock", "category"}
    assert not update.get("required")
    create_body = schemas["BookCreate"]["properties"]
    for name, field in update["properties"].items():
        assert "null" not in json.dumps(field), (name, field)
        assert "default" not in field, name
        assert field == {k: v for k, v in create_body[name].items() if k != "default"}


def test_changing_an_unknown_book_is_a_404(client: TestClient, staff: Account) -> None:
    response = client.put(f"/books/{uuid.uuid4()}", json={"stock": 1}, headers=staff.headers)
    assert_problem(response, 404, "not-found")


def test_an_empty_change_changes_nothing(client: TestClient, staff: Account) -> None:
    created = create(client, staff)
    response = client.put(f"/books/{created.json()['id']}", json={}, headers=staff.headers)
    assert response.status_code == 200, response.text
    assert response.json() == created.json()
    assert response.headers["etag"] == '"1"'


def test_a_cancel_that_would_push_the_stock_past_its_cap_is_a_409_and_reads_go_on(
    client: TestClient, container: Container, staff: Account
) -> None:
    """`book_listing.stock` is a 32-bit INTEGER: the copies coming back must fit in it."""
    cap = 2**31 - 1
    book_id = create(client, staff, stock=10).json()["id"]
    buyer = new_account(client, container)
    added = client.post(
        "/cart/items", json={"book_id": book_id, "quantity": 4}, headers=buyer.headers
    )
    assert added.status_code == 201, added.text
    order = client.post("/orders", headers=buyer.headers)
    assert order.status_code == 201, order.text
    corrected = client.put(f"/books/{book_id}", json={"stock": cap - 3}, headers=staff.headers)
    assert corrected.status_code == 200, corrected.text

    cancel = client.post(f"/orders/{order.json()['id']}/cancel", headers=buyer.headers)
    problem = assert_problem(cancel, 409, "conflict")
    assert str(cap) in str(problem["detail"])
    after = read(client, book_id, container.write_app.head())
    assert after.status_code == 200, after.text
    assert after.json()["stock"] == cap - 3


# ------------------------------------------------------------------------ delete


def test_a_deleted_book_leaves_the_listing_for_the_very_next_read(
    client: TestClient, staff: Account, admin: Account
) -> None:
    category = a_category()
    created = create(client, staff, category=category)
    book_id = created.json()["id"]
    assert listing(client, position_of(created), category=category)["total"] == 1

    deleted = client.delete(f"/books/{book_id}", headers=admin.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert position_of(deleted) > position_of(created)
    # No X-Min-Event-Position: the delete answered only once the listing had dropped it.
    assert_problem(client.get(f"/books/{book_id}"), 404, "not-found")
    page = client.get("/books", params={"category": category}).json()
    assert page == {"items": [], "total": 0, "limit": 20, "offset": 0}


def test_a_second_delete_is_a_404_and_the_isbn_is_free_again(
    client: TestClient, staff: Account, admin: Account
) -> None:
    book = create(client, staff).json()
    assert client.delete(f"/books/{book['id']}", headers=admin.headers).status_code == 204
    assert_problem(client.delete(f"/books/{book['id']}", headers=admin.headers), 404, "not-found")
    assert_problem(
        client.put(f"/books/{book['id']}", json={"stock": 1}, headers=staff.headers),
        404,
        "not-found",
    )
    assert create(client, staff, isbn=book["isbn"]).json()["isbn"] == book["isbn"]


def test_deleting_an_unknown_book_is_a_404(client: TestClient, admin: Account) -> None:
    response = client.delete(f"/books/{uuid.uuid4()}", headers=admin.headers)
    assert_problem(response, 404, "not-found")


# ------------------------------------------------------------------------ history


def test_the_history_lists_every_event_oldest_first_with_who_and_which_request(
    client: TestClient, staff: Account, admin: Account
) -> None:
    created = client.post(
        "/books",
        json=book_create_body(price="10.00"),
        headers={**staff.headers, "X-Request-ID": "req-create"},
    )
    book_id = created.json()["id"]
    changed = client.put(
        f"/books/{book_id}",
        json={"price": "9.5"},
        headers={**staff.headers, "X-Request-ID": "req-change"},
    )
    deleted = client.delete(
        f"/books/{book_id}", headers={**admin.headers, "X-Request-ID": "req-delete"}
    )

    response = client.get(f"/books/{book_id}/history", headers=staff.headers)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["type"] for item in items] == [
        "Book.Registered",
        "Book.DetailsChanged",
        "Book.Removed",
    ]
    assert [item["version"] for item in items] == [1, 2, 3]
    # A command may save the ISBN index after the book: its X-Event-Position is the last
    # event it saved, so each book event lies after the previous command and by its own.
    commands = [created, changed, deleted]
    ends = [position_of(command) for command in commands]
    starts = [0, *ends[:-1]]
    for item, start, end in zip(items, starts, ends, strict=True):
        assert start < item["position"] <= end
    assert [item["metadata"] for item in items] == [
        {"correlation_id": "req-create", "actor_id": staff.id},
        {"correlation_id": "req-change", "actor_id": staff.id},
        {"correlation_id": "req-delete", "actor_id": admin.id},
    ]
    registered, details, removed = (item["data"] for item in items)
    assert registered["price"] == "10.00"
    assert registered["title"] == created.json()["title"]
    assert details["price"] == "9.50"
    assert removed == {}
    stamps = [datetime.fromisoformat(item["timestamp"]) for item in items]
    assert stamps == sorted(stamps)
    assert all(item["timestamp"].endswith("Z") for item in items)


def test_the_history_of_an_unknown_book_or_of_something_else_is_a_404(
    client: TestClient, staff: Account
) -> None:
    assert_problem(
        client.get(f"/books/{uuid.uuid4()}/history", headers=staff.headers), 404, "not-found"
    )
    # A user's id names an aggregate too, but not a book: nothing of it is shown.
    assert_problem(
        client.get(f"/books/{staff.id}/history", headers=staff.headers), 404, "not-found"
    )


# ------------------------------------------------------------------------ as_of


def test_as_of_answers_the_book_as_it_was_then(
    client: TestClient, staff: Account, admin: Account
) -> None:
    created = create(client, staff, price="10.00", stock=1)
    book_id = created.json()["id"]
    client.put(f"/books/{book_id}", json={"price": "12.00"}, headers=staff.headers)
    client.delete(f"/books/{book_id}", headers=admin.headers)
    history = client.get(f"/books/{book_id}/history", headers=staff.headers).json()["items"]
    registered_at, changed_at, removed_at = (
        datetime.fromisoformat(item["timestamp"]) for item in history
    )

    def as_of(moment: datetime) -> Response:
        response: Response = client.get(f"/books/{book_id}", params={"as_of": moment.isoformat()})
        return response

    assert_problem(as_of(registered_at - timedelta(microseconds=1)), 404, "not-found")
    then = as_of(registered_at)
    assert then.status_code == 200, then.text
    assert then.json() == created.json()
    assert then.headers["etag"] == '"1"'
    assert "x-projection-position" not in then.headers
    later = as_of(changed_at)
    assert later.json()["price"] == "12.00"
    assert later.headers["etag"] == '"2"'
    assert_problem(as_of(removed_at), 404, "not-found")
    assert_problem(as_of(removed_at + timedelta(days=365)), 404, "not-found")


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-26T08:40:13.123456789Z",
        "2026-11-26t08:40:13z",
        "2026-11-26 08:40:13+01:00",
        "2026-11-26T08:40:13-05:30",
    ],
)
def test_as_of_takes_any_rfc_3339_time(client: TestClient, staff: Account, value: str) -> None:
    book_id = create(client, staff).json()["id"]
    # All in the past: the book did not exist yet then.
    assert_problem(client.get(f"/books/{book_id}", params={"as_of": value}), 404, "not-found")


@pytest.mark.parametrize(
    "value",
    ["yesterday", "2026-11-26", "2026-11-26T08:40:13", "2026-13-26T08:40:13Z", "1700000000"],
)
def test_as_of_that_is_not_an_rfc_3339_time_is_a_422(
    client: TestClient, staff: Account, value: str
) -> None:
    book_id = create(client, staff).json()["id"]
    response = client.get(f"/books/{book_id}", params={"as_of": value})
    problem = assert_problem(response, 422, "validation-error")
    assert locations(problem) == [["query", "as_of"]]


# ------------------------------------------------------------------------ filters and sorts


def test_q_matches_a_substring_of_the_title_or_the_author_whatever_the_case(
    client: TestClient, container: Container
) -> None:
    category = a_category()
    ids, head = seeded(
        container,
        category,
        {"title": "The Left Hand of Darkness", "author": "Ursula K. Le Guin"},
        {"title": "Dune", "author": "Frank Herbert"},
        {"title": "100% Pure_Code", "author": "Someone"},
    )
    found = listing(client, head, category=category, q="DARK")
    assert [b["id"] for b in found["items"]] == [ids[0]]
    assert [b["id"] for b in listing(client, head, category=category, q="herb")["items"]] == [
        ids[1]
    ]
    # LIKE's wildcards are plain characters in q.
    assert [b["id"] for b in listing(client, head, category=category, q="0% p")["items"]] == [
        ids[2]
    ]
    assert listing(client, head, category=category, q="_")["total"] == 1
    assert listing(client, head, category=category, q="%")["total"] == 1


def test_author_and_category_match_exactly_whatever_the_case(
    client: TestClient, container: Container
) -> None:
    category = a_category()
    ids, head = seeded(
        container,
        category,
        {"author": "Ann Leckie"},
        {"author": "Ann Leckie Jr"},
    )
    exact = listing(client, head, category=category.upper(), author="ann LECKIE")
    assert [b["id"] for b in exact["items"]] == [ids[0]]
    assert listing(client, head, category=category, author="Ann")["total"] == 0


def test_price_bounds_are_inclusive_and_exact(client: TestClient, container: Container) -> None:
    category = a_category()
    _, head = seeded(
        container,
        category,
        {"price": "0.10"},
        {"price": "0.20"},
        {"price": "0.30"},
        {"price": "0.31"},
    )

    def priced(**bounds: Any) -> list[str]:
        return [b["price"] for b in listing(client, head, category=category, **bounds)["items"]]

    assert priced(min_price="0.3", sort="price") == ["0.30", "0.31"]
    assert priced(max_price="0.30", sort="price") == ["0.10", "0.20", "0.30"]
    assert priced(min_price="0.2", max_price="0.2") == ["0.20"]
    assert priced(min_price=0, max_price=1000000, sort="-price") == ["0.31", "0.30", "0.20", "0.10"]


def test_in_stock_tells_books_with_copies_from_those_without(
    client: TestClient, container: Container
) -> None:
    category = a_category()
    ids, head = seeded(container, category, {"stock": 0}, {"stock": 1}, {"stock": 5})
    with_copies = listing(client, head, category=category, in_stock="true")
    assert sorted(b["id"] for b in with_copies["items"]) == sorted(ids[1:])
    assert [b["id"] for b in listing(client, head, category=category, in_stock=False)["items"]] == [
        ids[0]
    ]


def test_every_sort_orders_by_its_key_then_by_id(client: TestClient, container: Container) -> None:
    category = a_category()
    ids, head = seeded(
        container,
        category,
        {"title": "beta", "price": "2.00"},
        {"title": "Alpha", "price": "2.00"},
        {"title": "alpha", "price": "1.00"},
        {"title": "Gamma", "price": "3.00"},
    )
    by_id = sorted(ids)

    def order(sort: str | None) -> list[str]:
        params = {"category": category} | ({"sort": sort} if sort else {})
        return [b["id"] for b in listing(client, head, **params)["items"]]

    alphas = [i for i in by_id if i in (ids[1], ids[2])]
    assert order(None) == [*alphas, ids[0], ids[3]]  # title by default, case ignored
    assert order("title") == [*alphas, ids[0], ids[3]]
    assert order("-title") == [ids[3], ids[0], *alphas]
    twos = [i for i in by_id if i in (ids[0], ids[1])]
    assert order("price") == [ids[2], *twos, ids[3]]
    assert order("-price") == [ids[3], *twos, ids[2]]
    assert order("created_at") == ids
    assert order("-created_at") == ids[::-1]


def test_a_page_says_its_total_limit_and_offset(client: TestClient, container: Container) -> None:
    category = a_category()
    _, head = seeded(container, category, *({"title": f"Book {n}"} for n in range(5)))
    page = listing(client, head, category=category, limit=2, offset=2)
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 2)
    assert [b["title"] for b in page["items"]] == ["Book 2", "Book 3"]
    assert listing(client, head, category=category, offset=5)["items"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "author"},
        {"sort": "title,price"},
        {"min_price": "abc"},
        {"min_price": "1.234"},
        {"max_price": "-1"},
        {"max_price": "1000000.01"},
        {"min_price": "5", "max_price": "4"},
        {"in_stock": "maybe"},
        {"limit": 0},
        {"limit": 101},
        {"offset": -1},
        {"offset": 2**31},
        {"q": "a\x00b"},
        {"author": "tab\there"},
        {"category": "x" * 101},
    ],
    ids=repr,
)
def test_a_bad_filter_sort_or_page_is_a_422(client: TestClient, params: dict[str, Any]) -> None:
    assert_problem(client.get("/books", params=params), 422, "validation-error")


def test_a_lagging_projection_is_a_503_with_retry_after(client: TestClient) -> None:
    response = client.get("/books", headers={"X-Min-Event-Position": str(10**17)})
    # Waits 5 s: the bound the contract sets, then says why.
    problem = assert_problem(response, 503, "projection-lagging")
    assert response.headers["retry-after"]
    assert problem["projection"] == "book_listing"

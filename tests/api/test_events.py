"""GET /events: the event log for admins, paged by position, filtered by type and aggregate."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bookstore.bootstrap import Container
from tests.api.conftest import Account, assert_problem, new_account
from tests.event_log import all_notifications
from tests.factories import ctx, new_book, new_order

EVENT_FIELDS = {
    "position",
    "aggregate_id",
    "aggregate_type",
    "version",
    "type",
    "timestamp",
    "data",
    "metadata",
}


@pytest.fixture
def admin(client: TestClient, container: Container) -> Account:
    return new_account(client, container, "admin")


def _page(client: TestClient, admin: Account, **params: Any) -> dict[str, Any]:
    response = client.get("/events", params=params, headers=admin.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _walk(client: TestClient, admin: Account, **params: Any) -> list[dict[str, Any]]:
    """Every event, following next_after until a page comes back empty."""
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        page = _page(client, admin, after=after, **params)
        if not page["items"]:
            assert page["next_after"] == after
            return found
        found.extend(page["items"])
        assert page["next_after"] == page["items"][-1]["position"]
        after = page["next_after"]


def test_anonymous_callers_get_401_and_customers_and_staff_403(
    client: TestClient, container: Container
) -> None:
    assert_problem(client.get("/events"), 401, "authentication-required")
    for role in ("customer", "staff"):
        account = new_account(client, container, role)
        assert_problem(client.get("/events", headers=account.headers), 403, "forbidden")


def test_an_admin_walks_the_whole_log_in_pages_and_sees_every_stored_event_once(
    client: TestClient, container: Container, admin: Account
) -> None:
    app = container.write_app
    for _ in range(4):
        new_book(app)
    new_order(app)
    stored = all_notifications(app)

    walked = _walk(client, admin, limit=3)

    assert [item["position"] for item in walked] == [n.id for n in stored]
    assert [item["aggregate_id"] for item in walked] == [str(n.originator_id) for n in stored]
    assert [item["version"] for item in walked] == [n.originator_version for n in stored]
    assert all(set(item) == EVENT_FIELDS for item in walked)
    assert all(item["timestamp"].endswith("Z") for item in walked)


def test_a_page_holds_at_most_limit_events_after_the_given_position(
    client: TestClient, container: Container, admin: Account
) -> None:
    app = container.write_app
    for _ in range(3):
        new_book(app)
    positions = [n.id for n in all_notifications(app)]

    page = _page(client, admin, after=positions[1], limit=2)

    assert [item["position"] for item in page["items"]] == positions[2:4]
    assert page["next_after"] == positions[3]
    beyond = _page(client, admin, after=positions[-1])
    assert beyond == {"items": [], "next_after": positions[-1]}


def test_a_book_registration_reads_as_book_registered_with_money_as_a_string(
    client: TestClient, container: Container, admin: Account
) -> None:
    app = container.write_app
    actor = uuid.uuid4()
    book_id = app.register_book(
        ctx(actor, correlation_id="req-events-1"),
        title="Dune",
        author="Frank Herbert",
        isbn="9780441013593",
        price=Decimal("9.5"),
        stock=3,
        category="science fiction",
    ).id

    (item,) = _page(client, admin, type="Book.Registered", aggregate_id=str(book_id))["items"]

    assert item["aggregate_type"] == "Book"
    assert item["type"] == "Book.Registered"
    assert item["version"] == 1
    assert item["data"] == {
        "title": "Dune",
        "author": "Frank Herbert",
        "isbn": "9780441013593",
        "price": "9.50",
        "stock": 3,
        "category": "science fiction",
        "language": "en",
    }
    assert item["metadata"] == {"correlation_id": "req-events-1", "actor_id": str(actor)}


def test_type_filters_keep_only_those_types_and_may_be_repeated(
    client: TestClient, container: Container, admin: Account
) -> None:
    app = container.write_app
    book = new_book(app, stock=5)
    app.restock_book(ctx(), book, 2)
    app.change_book(ctx(), book, title="A new title")
    new_order(app, (book, 1))

    registered = _walk(client, admin, type="Book.Registered")
    assert registered
    assert {item["type"] for item in registered} == {"Book.Registered"}

    both = _walk(client, admin, type=["Book.DetailsChanged", "Order.Placed"])
    assert {item["type"] for item in both} == {"Book.DetailsChanged", "Order.Placed"}
    placed = [item for item in both if item["type"] == "Order.Placed"]
    assert all(isinstance(line["unit_price"], str) for line in placed[0]["data"]["lines"])


def test_aggregate_id_keeps_one_aggregates_events_in_version_order(
    client: TestClient, container: Container, admin: Account
) -> None:
    app = container.write_app
    book = new_book(app)
    new_book(app)
    app.change_book(ctx(), book, title="Second title")
    app.change_book(ctx(), book, title="Third title")

    items = _walk(client, admin, aggregate_id=str(book), limit=2)

    assert [item["version"] for item in items] == [1, 2, 3]
    assert {item["aggregate_id"] for item in items} == {str(book)}
    assert [item["type"] for item in items] == [
        "Book.Registered",
        "Book.DetailsChanged",
        "Book.DetailsChanged",
    ]


def test_an_unknown_id_or_a_filter_matching_nothing_gives_an_empty_page(
    client: TestClient, admin: Account
) -> None:
    page = _page(client, admin, aggregate_id=str(uuid.uuid4()), after=5)
    assert page == {"items": [], "next_after": 5}


@pytest.mark.parametrize(
    "params",
    [
        {"after": "-1"},
        {"after": "x"},
        {"after": str(2**63)},
        {"limit": "0"},
        {"limit": "1001"},
        {"type": "Book.Nonsense"},
        {"type": "nothing"},
        {"type": "Book.Registered\u0000"},
        {"aggregate_id": "not-a-uuid"},
    ],
)
def test_bad_query_parameters_are_422_problems(
    client: TestClient, admin: Account, params: dict[str, str]
) -> None:
    body = assert_problem(
        client.get("/events", params=params, headers=admin.headers), 422, "validation-error"
    )
    assert body["errors"]


def test_an_unknown_type_is_named_in_the_problem_with_the_known_ones(
    client: TestClient, admin: Account
) -> None:
    body = assert_problem(
        client.get("/events", params={"type": "Book.Borrowed"}, headers=admin.headers),
        422,
        "validation-error",
    )
    message = json.dumps(body["errors"])
    assert "Book.Borrowed" in message
    assert "Book.Registered" in message


def test_no_event_holds_a_password_hash_or_a_token(
    client: TestClient, container: Container, admin: Account
) -> None:
    account = new_account(client, container)
    client.put(
        "/users/me",
        json={"new_password": "another long password", "current_password": account.password},
        headers=account.headers,
    )
    text = json.dumps(_walk(client, admin)).lower()
    assert "$argon2" not in text
    assert "hash" not in text
    assert account.access_token.lower() not in text
    assert account.refresh_token.lower() not in text
    assert "User.PasswordChanged" in json.dumps(_walk(client, admin, type="User.PasswordChanged"))

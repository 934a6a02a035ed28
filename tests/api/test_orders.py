"""/orders: placing from the cart, idempotency, reading back, cancelling, moving along.

On SQLite and on PostgreSQL. Reads come from the `order_history` projection, so each read
that must see a command sends the position the command answered (`X-Min-Event-Position`),
as a client doing read-your-writes would.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from api import deps
from bookstore.bootstrap import Container
from tests.api.conftest import Account, assert_problem, new_account
from tests.factories import ctx, new_book

ORDER_FIELDS = {"id", "user_id", "status", "items", "total", "created_at", "updated_at"}


def fill_cart(client: TestClient, account: Account, *lines: tuple[UUID, int]) -> None:
    for book_id, quantity in lines:
        response = client.post(
            "/cart/items",
            json={"book_id": str(book_id), "quantity": quantity},
            headers=account.headers,
        )
        assert response.status_code == 201, response.text


def place(client: TestClient, account: Account, key: str | None = None) -> Any:
    headers = dict(account.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/orders", headers=headers)


def placed_order(client: TestClient, container: Container, account: Account) -> dict[str, Any]:
    """Fill the cart with one fresh book and order it; the order JSON and its position."""
    fill_cart(client, account, (new_book(container.write_app, stock=10), 1))
    response = place(client, account)
    assert response.status_code == 201, response.text
    return {**response.json(), "position": int(response.headers["x-event-position"])}


def read(client: TestClient, account: Account, path: str, after: int, **params: Any) -> Any:
    return client.get(
        path, params=params, headers={**account.headers, "X-Min-Event-Position": str(after)}
    )


def stock_of(container: Container, book_id: UUID) -> int:
    return container.write_app.get_book(book_id).stock


# ----------------------------------------------------------------------------- placing


def test_placing_an_order_snapshots_the_cart_takes_stock_and_empties_the_cart(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    dune = new_book(container.write_app, title="Dune", price=Decimal("12.50"), stock=5)
    dimes = new_book(container.write_app, title="Dimes", price=Decimal("0.10"), stock=5)
    fill_cart(client, shopper, (dune, 2), (dimes, 3))

    response = place(client, shopper)

    assert response.status_code == 201, response.text
    order = response.json()
    assert set(order) == ORDER_FIELDS
    assert response.headers["location"] == f"/orders/{order['id']}"
    assert int(response.headers["x-event-position"]) > 0
    assert order["user_id"] == shopper.id
    assert order["status"] == "pending"
    assert order["items"] == [
        {
            "book_id": str(dune),
            "title": "Dune",
            "quantity": 2,
            "unit_price": "12.50",
            "line_total": "25.00",
        },
        {
            "book_id": str(dimes),
            "title": "Dimes",
            "quantity": 3,
            "unit_price": "0.10",
            "line_total": "0.30",
        },
    ]
    assert order["total"] == "25.30"
    assert order["created_at"].endswith("Z")
    assert (stock_of(container, dune), stock_of(container, dimes)) == (3, 2)
    cart = client.get("/cart", headers=shopper.headers).json()
    assert cart == {"items": [], "total_quantity": 0, "total": "0.00"}


def test_the_order_just_placed_is_readable_by_waiting_for_its_position(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    fill_cart(client, shopper, (new_book(container.write_app, price=Decimal("0.10")), 3))
    placed = place(client, shopper)
    position = int(placed.headers["x-event-position"])

    response = read(client, shopper, placed.headers["location"], position)

    assert response.status_code == 200, response.text
    assert int(response.headers["x-projection-position"]) >= position
    # The projection's copy is the write model's, field for field.
    assert response.json() == placed.json()
    assert response.json()["total"] == "0.30"


def test_prices_are_those_of_the_moment_of_ordering(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    book = new_book(container.write_app, price=Decimal("20.00"))
    fill_cart(client, shopper, (book, 1))
    placed = place(client, shopper)
    last = container.write_app.change_book(ctx(), book, price="99.99")

    response = read(client, shopper, placed.headers["location"], last)

    assert response.json()["items"][0]["unit_price"] == "20.00"
    assert response.json()["total"] == "20.00"


def test_ordering_an_empty_cart_is_a_409(client: TestClient, container: Container) -> None:
    shopper = new_account(client, container)
    assert_problem(place(client, shopper), 409, "cart-empty")
    fill_cart(client, shopper, (new_book(container.write_app), 1))
    client.delete("/cart", headers=shopper.headers)
    assert_problem(place(client, shopper), 409, "cart-empty")


def test_insufficient_stock_is_a_409_listing_every_short_line_and_changes_nothing(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    plenty = new_book(container.write_app, stock=10)
    short_a = new_book(container.write_app, title="Short A", stock=5)
    short_b = new_book(container.write_app, title="Short B", stock=5)
    fill_cart(client, shopper, (plenty, 1), (short_a, 4), (short_b, 3))
    container.write_app.change_book(ctx(), short_a, stock=2)
    container.write_app.change_book(ctx(), short_b, stock=0)

    body = assert_problem(place(client, shopper), 409, "insufficient-stock")

    assert body["lines"] == [
        {"book_id": str(short_a), "title": "Short A", "requested": 4, "available": 2},
        {"book_id": str(short_b), "title": "Short B", "requested": 3, "available": 0},
    ]
    assert "Short A" in str(body["detail"])
    assert [stock_of(container, b) for b in (plenty, short_a, short_b)] == [10, 2, 0]
    assert len(client.get("/cart", headers=shopper.headers).json()["items"]) == 3


def test_a_removed_book_in_the_cart_is_a_409_naming_that_line(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    kept = new_book(container.write_app)
    gone = new_book(container.write_app, title="Withdrawn")
    fill_cart(client, shopper, (kept, 1), (gone, 2))
    container.write_app.remove_book(ctx(), gone)

    body = assert_problem(place(client, shopper), 409, "insufficient-stock")

    assert body["lines"] == [
        {"book_id": str(gone), "title": "Withdrawn", "requested": 2, "available": 0}
    ]
    assert "Withdrawn" in str(body["detail"])
    client.delete(f"/cart/items/{gone}", headers=shopper.headers)
    assert place(client, shopper).status_code == 201


# ----------------------------------------------------------------------------- idempotency


def test_a_retry_with_the_same_key_answers_200_with_the_first_order_and_creates_nothing(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    book = new_book(container.write_app, stock=10)
    fill_cart(client, shopper, (book, 2))
    key = str(uuid4())

    first = place(client, shopper, key)
    # The shopper fills the cart again before the retry: it must not be ordered.
    fill_cart(client, shopper, (book, 1))
    retry = place(client, shopper, key)

    assert first.status_code == 201, first.text
    assert retry.status_code == 200, retry.text
    assert retry.json() == first.json()
    assert retry.headers["content-location"] == first.headers["location"]
    assert "location" not in retry.headers
    assert stock_of(container, book) == 8
    assert client.get("/cart", headers=shopper.headers).json()["total_quantity"] == 1
    listed = read(client, shopper, "/orders", int(retry.headers["x-event-position"])).json()
    assert [o["id"] for o in listed["items"]] == [first.json()["id"]]


def test_the_same_key_from_another_user_is_another_order(
    client: TestClient, container: Container
) -> None:
    alice, bob = new_account(client, container), new_account(client, container)
    book = new_book(container.write_app, stock=10)
    fill_cart(client, alice, (book, 1))
    fill_cart(client, bob, (book, 1))
    key = "shared-key-1"
    for_alice, for_bob = place(client, alice, key), place(client, bob, key)
    assert (for_alice.status_code, for_bob.status_code) == (201, 201)
    assert for_alice.json()["id"] != for_bob.json()["id"]
    assert for_bob.json()["user_id"] == bob.id
    assert stock_of(container, book) == 8


def test_two_concurrent_requests_with_one_key_make_one_order(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    book = new_book(container.write_app, stock=50)
    fill_cart(client, shopper, (book, 2))
    key = str(uuid4())
    start = threading.Barrier(6)
    answers: list[Any] = []

    def buy() -> None:
        start.wait()
        answers.append(place(client, shopper, key))

    threads = [threading.Thread(target=buy) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200, 200, 200, 200, 200, 201], [a.text for a in answers]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert stock_of(container, book) == 48
    head = max(int(answer.headers["x-event-position"]) for answer in answers)
    assert read(client, shopper, "/orders", head).json()["total"] == 1


@pytest.mark.parametrize(
    "key",
    [b"", b"x" * 256, b"has space", b"tab\there", "caf\u00e9".encode("latin-1")],
    ids=["empty", "too-long", "space", "tab", "not-ascii"],
)
def test_a_bad_idempotency_key_is_a_422_and_orders_nothing(
    client: TestClient, container: Container, key: bytes
) -> None:
    shopper = new_account(client, container)
    book = new_book(container.write_app, stock=10)
    fill_cart(client, shopper, (book, 1))
    response = client.post("/orders", headers={**shopper.headers, "Idempotency-Key": key})
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["loc"] == ["header", "Idempotency-Key"]  # type: ignore[index]
    assert stock_of(container, book) == 10


def test_a_255_character_key_is_fine(client: TestClient, container: Container) -> None:
    shopper = new_account(client, container)
    fill_cart(client, shopper, (new_book(container.write_app), 1))
    key = "k" * 254 + "~"
    assert place(client, shopper, key).status_code == 201
    assert place(client, shopper, key).status_code == 200


# ----------------------------------------------------------------------------- reading


def test_a_shopper_lists_their_own_orders_newest_first_in_pages(
    client: TestClient, container: Container
) -> None:
    shopper, other = new_account(client, container), new_account(client, container)
    mine = [placed_order(client, container, shopper) for _ in range(3)]
    theirs = placed_order(client, container, other)
    head = max(o["position"] for o in [*mine, theirs])

    response = read(client, shopper, "/orders", head)

    assert response.status_code == 200, response.text
    assert int(response.headers["x-projection-position"]) >= head
    page = response.json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 20, 0)
    assert [o["id"] for o in page["items"]] == [o["id"] for o in reversed(mine)]
    assert set(page["items"][0]) == ORDER_FIELDS
    first = read(client, shopper, "/orders", head, limit=2).json()
    second = read(client, shopper, "/orders", head, limit=2, offset=2).json()
    assert [o["id"] for o in first["items"] + second["items"]] == [o["id"] for o in reversed(mine)]
    assert second["total"] == 3


def test_staff_list_one_users_orders_or_everyones(client: TestClient, container: Container) -> None:
    staff = new_account(client, container, "staff")
    alice, bob = new_account(client, container), new_account(client, container)
    for_alice = placed_order(client, container, alice)
    for_bob = placed_order(client, container, bob)
    head = for_bob["position"]

    own = read(client, staff, "/orders", head).json()
    of_alice = read(client, staff, "/orders", head, user_id=alice.id).json()
    everyone = read(client, staff, "/orders", head, scope="all").json()

    assert own["items"] == []
    assert [o["id"] for o in of_alice["items"]] == [for_alice["id"]]
    assert [o["id"] for o in everyone["items"]] == [for_bob["id"], for_alice["id"]]
    assert everyone["total"] == 2


@pytest.mark.parametrize("params", [{"user_id": "SELF"}, {"scope": "all"}])
def test_a_customer_asking_for_others_orders_is_a_403(
    client: TestClient, container: Container, params: dict[str, str]
) -> None:
    shopper = new_account(client, container)
    if params.get("user_id") == "SELF":
        params = {"user_id": shopper.id}  # even naming themselves: the filter is for staff
    response = client.get("/orders", params=params, headers=shopper.headers)
    assert_problem(response, 403, "forbidden")


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"offset": -1},
        {"scope": "everyone"},
        {"user_id": "nope"},
        {"scope": "all", "user_id": str(uuid4())},
    ],
)
def test_bad_list_parameters_are_a_422(
    client: TestClient, container: Container, params: dict[str, object]
) -> None:
    staff = new_account(client, container, "staff")
    response = client.get("/orders", params=params, headers=staff.headers)
    assert_problem(response, 422, "validation-error")


def test_another_users_order_is_not_found_but_staff_see_it(
    client: TestClient, container: Container
) -> None:
    owner, stranger = new_account(client, container), new_account(client, container)
    staff = new_account(client, container, "staff")
    order = placed_order(client, container, owner)
    path = f"/orders/{order['id']}"

    assert read(client, owner, path, order["position"]).status_code == 200
    assert_problem(read(client, stranger, path, order["position"]), 404, "not-found")
    seen_by_staff = read(client, staff, path, order["position"])
    assert seen_by_staff.status_code == 200
    assert seen_by_staff.json()["user_id"] == owner.id


def test_an_unknown_order_is_a_404_and_a_bad_id_a_422(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    assert_problem(client.get(f"/orders/{uuid4()}", headers=shopper.headers), 404, "not-found")
    assert_problem(client.get("/orders/42", headers=shopper.headers), 422, "validation-error")


def test_a_position_not_reached_in_time_is_a_503_with_retry_after(
    client: TestClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deps, "PROJECTION_WAIT_SECONDS", 0.3)
    shopper = new_account(client, container)
    for path in ("/orders", f"/orders/{uuid4()}"):
        response = read(client, shopper, path, 10**12)
        assert_problem(response, 503, "projection-lagging")
        assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize("value", ["-1", "abc", "1.5"])
def test_a_min_event_position_that_is_not_a_non_negative_integer_is_a_422(
    client: TestClient, container: Container, value: str
) -> None:
    shopper = new_account(client, container)
    response = client.get("/orders", headers={**shopper.headers, "X-Min-Event-Position": value})
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["loc"] == ["header", "x-min-event-position"]  # type: ignore[index]


# ----------------------------------------------------------------------------- cancelling


def test_the_owner_cancels_a_pending_order_and_the_stock_comes_back(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    book = new_book(container.write_app, stock=5)
    fill_cart(client, shopper, (book, 3))
    order = place(client, shopper).json()
    assert stock_of(container, book) == 2

    response = client.post(f"/orders/{order['id']}/cancel", headers=shopper.headers)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["items"] == order["items"]
    position = int(response.headers["x-event-position"])
    assert stock_of(container, book) == 5
    read_back = read(client, shopper, f"/orders/{order['id']}", position).json()
    assert read_back["status"] == "cancelled"
    assert read_back["updated_at"] > read_back["created_at"]
    again = client.post(f"/orders/{order['id']}/cancel", headers=shopper.headers)
    assert_problem(again, 409, "invalid-transition")
    assert stock_of(container, book) == 5


def test_an_owner_cannot_cancel_a_paid_order_but_staff_can(
    client: TestClient, container: Container
) -> None:
    shopper, staff = new_account(client, container), new_account(client, container, "staff")
    book = new_book(container.write_app, stock=4)
    fill_cart(client, shopper, (book, 4))
    order_id = place(client, shopper).json()["id"]
    paid = client.put(f"/orders/{order_id}/status", json={"status": "paid"}, headers=staff.headers)
    assert paid.status_code == 200, paid.text

    by_owner = client.post(f"/orders/{order_id}/cancel", headers=shopper.headers)
    assert_problem(by_owner, 409, "invalid-transition")
    assert stock_of(container, book) == 0

    by_staff = client.post(f"/orders/{order_id}/cancel", headers=staff.headers)
    assert by_staff.status_code == 200, by_staff.text
    assert by_staff.json()["status"] == "cancelled"
    assert by_staff.json()["user_id"] == shopper.id
    assert stock_of(container, book) == 4


def test_staff_cannot_cancel_a_shipped_order(client: TestClient, container: Container) -> None:
    shopper, staff = new_account(client, container), new_account(client, container, "staff")
    order_id = placed_order(client, container, shopper)["id"]
    for step in ("paid", "shipped"):
        client.put(f"/orders/{order_id}/status", json={"status": step}, headers=staff.headers)
    response = client.post(f"/orders/{order_id}/cancel", headers=staff.headers)
    assert_problem(response, 409, "invalid-transition")


def test_cancelling_another_users_or_an_unknown_order_is_a_404(
    client: TestClient, container: Container
) -> None:
    owner, stranger = new_account(client, container), new_account(client, container)
    order_id = placed_order(client, container, owner)["id"]
    response = client.post(f"/orders/{order_id}/cancel", headers=stranger.headers)
    assert_problem(response, 404, "not-found")
    assert container.write_app.get_order(UUID(order_id)).status == "pending"
    unknown = client.post(f"/orders/{uuid4()}/cancel", headers=owner.headers)
    assert_problem(unknown, 404, "not-found")


# ----------------------------------------------------------------------------- status


def test_staff_move_an_order_from_pending_to_delivered_one_step_at_a_time(
    client: TestClient, container: Container
) -> None:
    shopper, staff = new_account(client, container), new_account(client, container, "staff")
    order_id = placed_order(client, container, shopper)["id"]
    path = f"/orders/{order_id}/status"

    skipping = client.put(path, json={"status": "shipped"}, headers=staff.headers)
    assert_problem(skipping, 409, "invalid-transition")
    position = 0
    for step in ("paid", "shipped", "delivered"):
        response = client.put(path, json={"status": step}, headers=staff.headers)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == step
        position = int(response.headers["x-event-position"])
    repeated = client.put(path, json={"status": "delivered"}, headers=staff.headers)
    assert_problem(repeated, 409, "invalid-transition")
    backwards = client.put(path, json={"status": "paid"}, headers=staff.headers)
    assert_problem(backwards, 409, "invalid-transition")
    assert read(client, shopper, f"/orders/{order_id}", position).json()["status"] == "delivered"


def test_a_cancelled_order_moves_no_further(client: TestClient, container: Container) -> None:
    shopper, staff = new_account(client, container), new_account(client, container, "staff")
    order_id = placed_order(client, container, shopper)["id"]
    client.post(f"/orders/{order_id}/cancel", headers=shopper.headers)
    response = client.put(
        f"/orders/{order_id}/status", json={"status": "paid"}, headers=staff.headers
    )
    assert_problem(response, 409, "invalid-transition")


@pytest.mark.parametrize(
    "body", [{"status": "cancelled"}, {"status": "pending"}, {"status": "lost"}, {}]
)
def test_any_other_status_is_a_422(
    client: TestClient, container: Container, body: dict[str, str]
) -> None:
    shopper, staff = new_account(client, container), new_account(client, container, "staff")
    order_id = placed_order(client, container, shopper)["id"]
    response = client.put(f"/orders/{order_id}/status", json=body, headers=staff.headers)
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["loc"] == ["body", "status"]  # type: ignore[index]


def test_customers_may_not_change_a_status_and_an_unknown_order_is_a_404(
    client: TestClient, container: Container
) -> None:
    shopper, staff = new_account(client, container), new_account(client, container, "staff")
    order_id = placed_order(client, container, shopper)["id"]
    by_owner = client.put(
        f"/orders/{order_id}/status", json={"status": "paid"}, headers=shopper.headers
    )
    assert_problem(by_owner, 403, "forbidden")
    unknown = client.put(
        f"/orders/{uuid4()}/status", json={"status": "paid"}, headers=staff.headers
    )
    assert_problem(unknown, 404, "not-found")


def test_a_status_body_that_is_not_json_is_a_415(client: TestClient, container: Container) -> None:
    staff = new_account(client, container, "staff")
    response = client.put(
        f"/orders/{uuid4()}/status",
        content=b"status=paid",
        headers={**staff.headers, "Content-Type": "text/plain"},
    )
    assert_problem(response, 415, "unsupported-media-type")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/orders"),
        ("POST", "/orders"),
        ("GET", "/orders/0c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f"),
        ("POST", "/orders/0c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f/cancel"),
        ("PUT", "/orders/0c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f/status"),
    ],
)
def test_orders_need_a_signed_in_user(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={"status": "paid"})
    assert_problem(response, 401, "authentication-required")

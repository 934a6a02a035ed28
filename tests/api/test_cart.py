"""/cart: a shopper's own cart, read from the write model, on SQLite and on PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from bookstore.bootstrap import Container
from tests.api.conftest import Account, assert_problem, new_account
from tests.factories import ctx, new_book


def add(client: TestClient, account: Account, book_id: UUID, **body: Any) -> Any:
    return client.post(
        "/cart/items", json={"book_id": str(book_id), **body}, headers=account.headers
    )


def cart_of(client: TestClient, account: Account) -> dict[str, Any]:
    response = client.get("/cart", headers=account.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_new_shopper_has_an_empty_cart(client: TestClient, container: Container) -> None:
    shopper = new_account(client, container)
    assert cart_of(client, shopper) == {"items": [], "total_quantity": 0, "total": "0.00"}


def test_adding_a_book_answers_201_with_the_whole_cart_and_its_event_position(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    book = new_book(container.write_app, title="Dune", price=Decimal("12.50"), stock=5)

    response = add(client, shopper, book, quantity=2)

    assert response.status_code == 201, response.text
    assert int(response.headers["x-event-position"]) > 0
    expected = {
        "items": [
            {
                "book_id": str(book),
                "title": "Dune",
                "unit_price": "12.50",
                "quantity": 2,
                "line_total": "25.00",
                "available": True,
            }
        ],
        "total_quantity": 2,
        "total": "25.00",
    }
    assert response.json() == expected
    # Read from the write model: the very next read sees it, no position needed.
    assert cart_of(client, shopper) == expected


def test_the_quantity_defaults_to_one_and_the_same_book_again_adds_up(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    book = new_book(container.write_app, stock=10)
    assert add(client, shopper, book).json()["items"][0]["quantity"] == 1
    cart = add(client, shopper, book, quantity=3).json()
    assert [(line["book_id"], line["quantity"]) for line in cart["items"]] == [(str(book), 4)]
    assert cart["total_quantity"] == 4


def test_money_is_exact_decimal_text_never_a_float(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    dime = new_book(container.write_app, price=Decimal("0.10"), stock=10)
    fifth = new_book(container.write_app, price=Decimal("0.20"), stock=10)
    add(client, shopper, dime, quantity=3)
    response = add(client, shopper, fifth)
    cart = response.json()
    assert [line["line_total"] for line in cart["items"]] == ["0.30", "0.20"]
    assert cart["total"] == "0.50"  # 0.1 * 3 + 0.2 is 0.5000000000000001 in floats
    assert '"total":"0.50"' in response.text.replace(" ", "")


def test_the_cart_shows_the_books_current_prices(client: TestClient, container: Container) -> None:
    shopper = new_account(client, container)
    book = new_book(container.write_app, price=Decimal("10.00"), stock=5)
    add(client, shopper, book, quantity=2)
    container.write_app.change_book(ctx(), book, price="7.99")
    cart = cart_of(client, shopper)
    assert cart["items"][0]["unit_price"] == "7.99"
    assert cart["total"] == "15.98"


def test_a_removed_book_stays_in_the_cart_unavailable_and_out_of_the_totals(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    kept = new_book(container.write_app, price=Decimal("4.00"), stock=5)
    gone = new_book(container.write_app, title="Withdrawn", price=Decimal("9.00"), stock=5)
    add(client, shopper, kept, quantity=2)
    add(client, shopper, gone, quantity=1)
    container.write_app.remove_book(ctx(), gone)

    cart = cart_of(client, shopper)

    by_book = {line["book_id"]: line for line in cart["items"]}
    assert by_book[str(gone)]["available"] is False
    assert by_book[str(gone)]["title"] == "Withdrawn"
    assert by_book[str(kept)]["available"] is True
    assert (cart["total_quantity"], cart["total"]) == (2, "8.00")


def test_a_line_above_the_stock_left_is_unavailable_and_out_of_the_totals(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    book = new_book(container.write_app, price=Decimal("3.00"), stock=5)
    add(client, shopper, book, quantity=3)
    container.write_app.change_book(ctx(), book, stock=2)  # others bought copies meanwhile

    cart = cart_of(client, shopper)

    assert cart["items"][0]["available"] is False
    assert cart["items"][0]["line_total"] == "9.00"
    assert (cart["total_quantity"], cart["total"]) == (0, "0.00")
    container.write_app.change_book(ctx(), book, stock=3)
    assert cart_of(client, shopper)["items"][0]["available"] is True


def test_each_shopper_sees_only_their_own_cart(client: TestClient, container: Container) -> None:
    alice, bob = new_account(client, container), new_account(client, container)
    add(client, alice, new_book(container.write_app))
    assert cart_of(client, bob)["items"] == []
    assert len(cart_of(client, alice)["items"]) == 1


def test_adding_an_unknown_or_removed_book_is_a_404(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    assert_problem(add(client, shopper, uuid4()), 404, "not-found")
    removed = new_book(container.write_app)
    container.write_app.remove_book(ctx(), removed)
    assert_problem(add(client, shopper, removed), 404, "not-found")
    assert cart_of(client, shopper)["items"] == []


def test_adding_more_than_in_stock_is_a_409_naming_the_line_and_changes_nothing(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    book = new_book(container.write_app, title="Scarce", stock=3)
    body = assert_problem(add(client, shopper, book, quantity=4), 409, "insufficient-stock")
    assert body["lines"] == [
        {"book_id": str(book), "title": "Scarce", "requested": 4, "available": 3}
    ]
    assert cart_of(client, shopper)["items"] == []

    add(client, shopper, book, quantity=2)
    adding_up = assert_problem(add(client, shopper, book, quantity=2), 409, "insufficient-stock")
    assert adding_up["lines"][0]["requested"] == 4  # type: ignore[index]
    assert cart_of(client, shopper)["items"][0]["quantity"] == 2


def test_a_line_never_holds_more_than_99_copies(client: TestClient, container: Container) -> None:
    shopper = new_account(client, container)
    book = new_book(container.write_app, stock=500)
    add(client, shopper, book, quantity=60)
    body = assert_problem(add(client, shopper, book, quantity=40), 422, "validation-error")
    assert body["errors"][0]["loc"] == ["body", "quantity"]  # type: ignore[index]
    assert cart_of(client, shopper)["items"][0]["quantity"] == 60


@pytest.mark.parametrize(
    "body",
    [
        {"quantity": 0},
        {"quantity": 100},
        {"quantity": -1},
        {"quantity": "2"},
        {"quantity": 1.5},
        {"quantity": True},
        {"quantity": None},
        {"book_id": "not-a-uuid"},
        {"book_id": None},
    ],
)
def test_a_bad_line_is_a_422_naming_the_field(
    client: TestClient, container: Container, body: dict[str, Any]
) -> None:
    shopper = new_account(client, container)
    book = new_book(container.write_app)
    response = client.post(
        "/cart/items", json={"book_id": str(book), **body}, headers=shopper.headers
    )
    problem = assert_problem(response, 422, "validation-error")
    (field,) = body
    assert ["body", field] in [error["loc"][:2] for error in problem["errors"]]  # type: ignore[attr-defined]


def test_a_line_without_a_book_id_is_a_422(client: TestClient, container: Container) -> None:
    shopper = new_account(client, container)
    response = client.post("/cart/items", json={"quantity": 1}, headers=shopper.headers)
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["loc"] == ["body", "book_id"]  # type: ignore[index]


def test_a_body_that_is_not_json_is_refused(client: TestClient, container: Container) -> None:
    shopper = new_account(client, container)
    form = client.post(
        "/cart/items",
        content=b"book_id=x&quantity=1",
        headers={**shopper.headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(form, 415, "unsupported-media-type")
    broken = client.post(
        "/cart/items",
        content=b'{"book_id": ',
        headers={**shopper.headers, "Content-Type": "application/json"},
    )
    assert_problem(broken, 400, "malformed-json")


def test_setting_a_quantity_answers_the_cart(client: TestClient, container: Container) -> None:
    shopper = new_account(client, container)
    book = new_book(container.write_app, price=Decimal("2.50"), stock=10)
    add(client, shopper, book, quantity=1)

    response = client.put(f"/cart/items/{book}", json={"quantity": 4}, headers=shopper.headers)

    assert response.status_code == 200, response.text
    assert int(response.headers["x-event-position"]) > 0
    assert response.json()["items"][0]["quantity"] == 4
    assert response.json()["total"] == "10.00"
    assert cart_of(client, shopper) == response.json()


def test_setting_the_quantity_of_a_book_not_in_the_cart_is_a_404(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    book = new_book(container.write_app)
    response = client.put(f"/cart/items/{book}", json={"quantity": 1}, headers=shopper.headers)
    assert_problem(response, 404, "not-found")
    add(client, shopper, new_book(container.write_app))
    response = client.put(f"/cart/items/{book}", json={"quantity": 1}, headers=shopper.headers)
    assert_problem(response, 404, "not-found")


def test_setting_more_than_in_stock_is_a_409_and_keeps_the_line(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    book = new_book(container.write_app, stock=3)
    add(client, shopper, book, quantity=2)
    response = client.put(f"/cart/items/{book}", json={"quantity": 5}, headers=shopper.headers)
    body = assert_problem(response, 409, "insufficient-stock")
    assert body["lines"][0]["available"] == 3  # type: ignore[index]
    assert cart_of(client, shopper)["items"][0]["quantity"] == 2


@pytest.mark.parametrize("body", [{}, {"quantity": 0}, {"quantity": 100}, {"quantity": "3"}])
def test_setting_a_bad_quantity_is_a_422(
    client: TestClient, container: Container, body: dict[str, Any]
) -> None:
    shopper = new_account(client, container)
    book = new_book(container.write_app)
    add(client, shopper, book)
    response = client.put(f"/cart/items/{book}", json=body, headers=shopper.headers)
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["loc"] == ["body", "quantity"]  # type: ignore[index]


def test_a_book_id_in_the_path_that_is_not_a_uuid_is_a_422(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    put = client.put("/cart/items/nope", json={"quantity": 1}, headers=shopper.headers)
    assert_problem(put, 422, "validation-error")
    assert_problem(
        client.delete("/cart/items/nope", headers=shopper.headers), 422, "validation-error"
    )


def test_removing_a_line_answers_204_and_a_second_removal_is_a_404(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    kept, dropped = new_book(container.write_app), new_book(container.write_app)
    add(client, shopper, kept)
    add(client, shopper, dropped)

    response = client.delete(f"/cart/items/{dropped}", headers=shopper.headers)

    assert response.status_code == 204
    assert response.content == b""
    assert int(response.headers["x-event-position"]) > 0
    assert [line["book_id"] for line in cart_of(client, shopper)["items"]] == [str(kept)]
    again = client.delete(f"/cart/items/{dropped}", headers=shopper.headers)
    assert_problem(again, 404, "not-found")


def test_removing_from_an_empty_cart_is_a_404(client: TestClient, container: Container) -> None:
    shopper = new_account(client, container)
    response = client.delete(f"/cart/items/{uuid4()}", headers=shopper.headers)
    assert_problem(response, 404, "not-found")


def test_emptying_the_cart_answers_204_even_when_it_was_empty(
    client: TestClient, container: Container
) -> None:
    shopper = new_account(client, container)
    add(client, shopper, new_book(container.write_app), quantity=2)
    add(client, shopper, new_book(container.write_app))

    response = client.delete("/cart", headers=shopper.headers)

    assert response.status_code == 204
    assert response.content == b""
    assert int(response.headers["x-event-position"]) > 0
    assert cart_of(client, shopper) == {"items": [], "total_quantity": 0, "total": "0.00"}
    assert client.delete("/cart", headers=shopper.headers).status_code == 204


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/cart"),
        ("POST", "/cart/items"),
        ("PUT", "/cart/items/6b0f7c3e-2d4a-4f7e-9a51-0c2b8e6d4f10"),
        ("DELETE", "/cart/items/6b0f7c3e-2d4a-4f7e-9a51-0c2b8e6d4f10"),
        ("DELETE", "/cart"),
    ],
)
def test_the_cart_needs_a_signed_in_user(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={"book_id": str(uuid4()), "quantity": 1})
    assert_problem(response, 401, "authentication-required")
    assert response.headers["www-authenticate"] == "Bearer"

"""The Cart aggregate: one per user, 1..99 copies a line."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from write_model.cart import Cart, cart_total
from write_model.errors import InvalidValueError, NotFoundError
from write_model.ids import cart_id_for


def new_cart() -> Cart:
    cart = Cart(user_id=uuid4())
    cart.collect_events()
    return cart


def names(cart: Cart) -> list[str]:
    return [type(e).__name__ for e in cart.collect_events()]


def test_a_cart_id_follows_from_its_user() -> None:
    user_id = uuid4()
    assert Cart(user_id=user_id).id == cart_id_for(user_id)
    assert cart_id_for(user_id) != cart_id_for(uuid4())


def test_adding_the_same_book_again_adds_up() -> None:
    cart = new_cart()
    book_a, book_b = uuid4(), uuid4()
    cart.add_item(book_a, 2)
    cart.add_item(book_b)
    cart.add_item(book_a, 3)
    assert cart.items() == [(book_a, 5), (book_b, 1)]
    assert cart.total_quantity == 6
    assert names(cart) == ["ItemAdded", "ItemAdded", "ItemAdded"]


@pytest.mark.parametrize("quantity", [0, -1, 100, True, 2.0])
def test_a_line_quantity_outside_1_to_99_is_refused(quantity: object) -> None:
    cart = new_cart()
    with pytest.raises(InvalidValueError):
        cart.add_item(uuid4(), quantity)  # type: ignore[arg-type]
    assert cart.lines == {}


def test_adding_past_99_copies_on_a_line_is_refused() -> None:
    cart = new_cart()
    book = uuid4()
    cart.add_item(book, 99)
    with pytest.raises(InvalidValueError):
        cart.add_item(book, 1)
    assert cart.quantity_of(book) == 99


def test_setting_a_quantity_replaces_it_and_records_nothing_when_unchanged() -> None:
    cart = new_cart()
    book = uuid4()
    cart.add_item(book, 2)
    assert cart.set_quantity(book, 7) is True
    assert cart.set_quantity(book, 7) is False
    assert cart.quantity_of(book) == 7
    assert names(cart) == ["ItemAdded", "QuantitySet"]
    for bad in [0, 100]:
        with pytest.raises(InvalidValueError):
            cart.set_quantity(book, bad)
    assert cart.quantity_of(book) == 7


def test_a_line_not_in_the_cart_is_not_found() -> None:
    cart = new_cart()
    missing = uuid4()
    with pytest.raises(NotFoundError):
        cart.quantity_of(missing)
    with pytest.raises(NotFoundError):
        cart.set_quantity(missing, 1)
    with pytest.raises(NotFoundError):
        cart.remove_item(missing)
    assert cart.collect_events() == []


def test_removing_a_line_keeps_the_others() -> None:
    cart = new_cart()
    book_a, book_b = uuid4(), uuid4()
    cart.add_item(book_a)
    cart.add_item(book_b, 2)
    cart.remove_item(book_a)
    assert cart.items() == [(book_b, 2)]


def test_clearing_empties_the_cart_and_records_nothing_when_already_empty() -> None:
    cart = new_cart()
    assert cart.clear() is False
    cart.add_item(uuid4())
    assert cart.clear() is True
    assert cart.lines == {}
    assert names(cart) == ["ItemAdded", "Cleared"]


def test_the_cart_total_is_exact_to_the_cent() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    prices: dict[UUID, Decimal] = {a: Decimal("0.10"), b: Decimal("0.20")}
    total = cart_total([(a, 3), (b, 1), (c, 4)], prices)
    assert total == Decimal("0.50")
    assert str(total) == "0.50"
    assert str(cart_total([], prices)) == "0.00"

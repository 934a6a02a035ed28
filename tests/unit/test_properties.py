"""Properties that must hold for every input: ISBN normalisation and cart arithmetic."""

from __future__ import annotations

from decimal import Decimal
from functools import reduce
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import isbn10_check_char
from write_model.cart import Cart, cart_total
from write_model.errors import InvalidValueError, NotFoundError
from write_model.isbn import isbn13_check_digit, normalise_isbn


@st.composite
def valid_isbn10(draw: st.DrawFn) -> str:
    body = draw(st.text(alphabet="0123456789", min_size=9, max_size=9))
    return body + isbn10_check_char(body)


@st.composite
def valid_isbn13(draw: st.DrawFn) -> str:
    body = draw(st.sampled_from(["978", "979"])) + draw(
        st.text(alphabet="0123456789", min_size=9, max_size=9)
    )
    return body + str(isbn13_check_digit(body))


def spelled(isbn: str, separators: list[int]) -> str:
    """The ISBN with hyphens and spaces inserted after the given positions."""
    out = list(isbn)
    for i, position in enumerate(sorted(set(separators), reverse=True)):
        out.insert(position, "-" if i % 2 else " ")
    return "".join(out)


@given(valid_isbn13(), st.lists(st.integers(min_value=1, max_value=12), max_size=4))
def test_normalising_an_isbn13_is_idempotent_whatever_its_separators(
    isbn: str, separators: list[int]
) -> None:
    normal = normalise_isbn(spelled(isbn, separators))
    assert normal == isbn
    assert normalise_isbn(normal) == normal


@given(valid_isbn10())
def test_an_isbn10_and_its_isbn13_normalise_to_the_same_key(isbn10: str) -> None:
    body = "978" + isbn10[:9]
    isbn13 = body + str(isbn13_check_digit(body))
    assert normalise_isbn(isbn10) == normalise_isbn(isbn13) == isbn13
    assert normalise_isbn(isbn10.lower()) == isbn13


def with_digit_changed(isbn: str, position: int, replacement: int) -> str | None:
    """The ISBN with one digit changed to another digit, or None when nothing changes."""
    if not isbn[position].isdigit() or int(isbn[position]) == replacement:
        return None
    return isbn[:position] + str(replacement) + isbn[position + 1 :]


@given(
    st.one_of(valid_isbn10(), valid_isbn13()),
    st.integers(min_value=0, max_value=12),
    st.integers(min_value=0, max_value=9),
)
def test_any_single_digit_change_is_rejected(isbn: str, position: int, digit: int) -> None:
    changed = with_digit_changed(isbn, position % len(isbn), digit)
    if changed is None:
        return
    with pytest.raises(InvalidValueError):
        normalise_isbn(changed)


# ----------------------------------------------------------------- carts

BOOKS = [uuid4() for _ in range(4)]
prices = st.decimals(min_value=0, max_value=Decimal("999999.99"), places=2)
operations = st.lists(
    st.tuples(
        st.sampled_from(["add", "set", "remove", "clear"]),
        st.integers(min_value=0, max_value=len(BOOKS) - 1),
        st.integers(min_value=-2, max_value=120),
    ),
    max_size=40,
)


def apply_to_model(model: dict[UUID, int], op: str, book: UUID, quantity: int) -> None:
    """The rules, written out independently of the aggregate: refused steps change nothing."""
    if op == "clear":
        model.clear()
    elif op == "remove":
        model.pop(book, None)
    elif op == "set":
        if book in model and 1 <= quantity <= 99:
            model[book] = quantity
    elif 1 <= quantity <= 99 and model.get(book, 0) + quantity <= 99:
        model[book] = model.get(book, 0) + quantity


def apply_to_cart(cart: Cart, op: str, book: UUID, quantity: int) -> None:
    try:
        if op == "add":
            cart.add_item(book, quantity)
        elif op == "set":
            cart.set_quantity(book, quantity)
        elif op == "remove":
            cart.remove_item(book)
        else:
            cart.clear()
    except (InvalidValueError, NotFoundError):
        pass


@given(operations, st.lists(prices, min_size=len(BOOKS), max_size=len(BOOKS)))
def test_any_sequence_of_cart_operations_keeps_lines_in_range_and_the_total_exact(
    steps: list[tuple[str, int, int]], book_prices: list[Decimal]
) -> None:
    cart = Cart(user_id=uuid4())
    model: dict[UUID, int] = {}
    for op, index, quantity in steps:
        apply_to_cart(cart, op, BOOKS[index], quantity)
        apply_to_model(model, op, BOOKS[index], quantity)
        assert all(1 <= q <= 99 for _, q in cart.items())
        assert dict(cart.items()) == model

    price_of = dict(zip(BOOKS, book_prices, strict=True))
    cents = sum(int(price_of[b] * 100) * q for b, q in model.items())
    total = cart_total(cart.items(), price_of)
    assert total == Decimal(cents) / 100
    assert total.as_tuple().exponent == -2

    replayed: Any = reduce(lambda agg, e: e.mutate(agg), cart.collect_events(), None)
    assert replayed.items() == cart.items()

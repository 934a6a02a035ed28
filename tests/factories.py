"""Shared test data: random but valid payloads, and aggregates made through the commands.

Every value a test does not state is random and valid (an ISBN with a correct check digit,
a price of two decimal places, a unique email), so a test depends only on what it spells
out. Two layers:

- factory_boy factories for payloads: `BookPayloadFactory`, `UserPayloadFactory`,
  `CartItemPayloadFactory`, `OrderLineFactory`, `OrderPayloadFactory` (keyword arguments
  for the write model), and `book_create_body`, `register_body`, `cart_item_body` (JSON
  bodies for the HTTP API, prices as strings);
- `new_book`, `new_user`, `new_customer`, `new_cart`, `new_order`: aggregates made through
  `Bookstore`'s own commands, so they pass every invariant and land in the log as real
  traffic would. They return ids.

Randomness comes from factory_boy's generator: `factory.random.reseed_random(n)` replays
a run's data. Used by tests/unit, tests/integration, tests/test_cli.py and bench/.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import factory
import factory.fuzzy
import factory.random

from write_model.application import Bookstore
from write_model.context import CommandContext
from write_model.isbn import isbn13_check_digit
from write_model.order import OrderLine
from write_model.values import Role

CATEGORIES = ("fiction", "science fiction", "history", "poetry", "travel", "children")
# Enough copies that a test's few carts and orders never run out by accident; a test about
# stock states its own.
DEFAULT_STOCK = 10
PASSWORD = "correct horse battery"


# ----------------------------------------------------------------------------- values


def _rng(rng: random.Random | None) -> random.Random:
    """The caller's generator (bench seeds its own), else factory_boy's shared one."""
    return rng if rng is not None else factory.random.randgen


def isbn10_check_char(first9: str) -> str:
    """The check character that completes nine digits into an ISBN-10."""
    total = sum((10 - i) * int(c) for i, c in enumerate(first9))
    check = (11 - total % 11) % 11
    return "X" if check == 10 else str(check)


def random_isbn13(rng: random.Random | None = None) -> str:
    """A valid ISBN-13 (978 or 979 prefix, correct check digit), as the catalogue keys it."""
    generator = _rng(rng)
    body = generator.choice(["978", "979"]) + "".join(generator.choices("0123456789", k=9))
    return body + str(isbn13_check_digit(body))


def random_isbn10(rng: random.Random | None = None) -> str:
    """A valid ISBN-10 (its check character may be X), which the write model converts."""
    body = "".join(_rng(rng).choices("0123456789", k=9))
    return body + isbn10_check_char(body)


def random_price(rng: random.Random | None = None) -> Decimal:
    """A price from 1.00 to 99.99 with exactly two decimal places, as the model stores it."""
    cents = _rng(rng).randint(100, 9_999)
    return Decimal(cents).scaleb(-2)


# ----------------------------------------------------------------------------- payloads


class BookPayloadFactory(factory.DictFactory):
    """Keyword arguments for `Book.register` and `Bookstore.register_book`.

    `BookPayloadFactory(stock=0)` overrides a field; titles are unique in a run, so a test
    can find its book in a listing by title.
    """

    class Params:
        phrase = factory.Faker("catch_phrase")

    title = factory.LazyAttributeSequence(lambda o, n: f"{o.phrase} #{n}")
    author = factory.Faker("name")
    isbn = factory.LazyFunction(random_isbn13)
    price = factory.LazyFunction(random_price)
    stock = DEFAULT_STOCK
    category = factory.fuzzy.FuzzyChoice(CATEGORIES)


class UserPayloadFactory(factory.DictFactory):
    """Keyword arguments for `Bookstore.register_user`: a unique email and a fake hash.

    The hash is never checked by the write model; tests that log in over HTTP register
    through the API instead (`register_body`).
    """

    class Params:
        user_name = factory.Faker("user_name")

    email = factory.LazyAttributeSequence(lambda o, n: f"{o.user_name}.{n}@example.com")
    password_hash = factory.LazyFunction(lambda: f"$argon2id$fake${uuid4().hex}")
    full_name = factory.Faker("name")


class CartItemPayloadFactory(factory.DictFactory):
    """A cart line as `Bookstore.add_to_cart` takes it: `book_id` and `quantity` (1..3).

    The default `book_id` names no book; pass a real one (`new_book`) for the application.
    """

    book_id = factory.LazyFunction(uuid4)
    quantity = factory.fuzzy.FuzzyInteger(1, 3)


class OrderLineFactory(factory.Factory):
    """An `OrderLine` value as an order snapshots it, for tests of the Order aggregate."""

    class Meta:
        model = OrderLine

    book_id = factory.LazyFunction(uuid4)
    title = factory.Faker("catch_phrase")
    quantity = factory.fuzzy.FuzzyInteger(1, 3)
    unit_price = factory.LazyFunction(random_price)


class OrderPayloadFactory(factory.DictFactory):
    """Keyword arguments for `Order.place`: a user and two lines.

    `OrderPayloadFactory(lines=OrderLineFactory.build_batch(3))` for other lines.
    """

    user_id = factory.LazyFunction(uuid4)
    lines = factory.LazyFunction(lambda: OrderLineFactory.build_batch(2))


def book_payload(**overrides: Any) -> dict[str, Any]:
    """`BookPayloadFactory(**overrides)`, typed as the dict it is."""
    payload: dict[str, Any] = BookPayloadFactory(**overrides)
    return payload


def book_create_body(**overrides: Any) -> dict[str, Any]:
    """A JSON body for `POST /books` (and, any subset of it, `PUT /books/{id}`).

    As a client sends it: the price is a string, so no float rounding creeps in.
    Deliberately invalid overrides (`price=-1`, `price=None`) are passed through as given.
    """
    body = book_payload(**overrides)
    if isinstance(body["price"], Decimal):
        body["price"] = str(body["price"])
    return body


def register_body(**overrides: Any) -> dict[str, Any]:
    """A JSON body for `POST /auth/register`: a unique email, `PASSWORD`, a full name."""
    payload = UserPayloadFactory()
    body: dict[str, Any] = {
        "email": payload["email"],
        "password": PASSWORD,
        "full_name": payload["full_name"],
    }
    body.update(overrides)
    return body


def cart_item_body(book_id: UUID | str, **overrides: Any) -> dict[str, Any]:
    """A JSON body for `POST /cart/items`: the book's id as a string and a quantity."""
    payload = CartItemPayloadFactory(book_id=str(book_id), **overrides)
    return dict(payload)


# ----------------------------------------------------------------------------- aggregates


def ctx(actor_id: UUID | None = None, correlation_id: str | None = None) -> CommandContext:
    """A command context with a fresh correlation id, as a request would carry."""
    return CommandContext(correlation_id=correlation_id or f"req-{uuid4().hex}", actor_id=actor_id)


def new_book(app: Bookstore, **overrides: Any) -> UUID:
    """Register a book (`BookPayloadFactory` fields, `overrides` on top); its id."""
    return app.register_book(ctx(), **book_payload(**overrides)).id


def new_user(app: Bookstore, *, role: Role | str = Role.CUSTOMER, **overrides: Any) -> UUID:
    """Register a user (`UserPayloadFactory` fields), then give them `role`; their id.

    An admin is made by promotion, as the CLI does, so the roster of admins knows them.
    """
    user_id: UUID = app.register_user(ctx(), **UserPayloadFactory(**overrides)).id
    if Role(role) is not Role.CUSTOMER:
        app.change_role(ctx(), user_id, Role(role))
    return user_id


def new_customer(app: Bookstore, **overrides: Any) -> UUID:
    """Register a customer (`new_customer(app, email=...)` to choose the email); their id."""
    return new_user(app, role=Role.CUSTOMER, **overrides)


def new_cart(app: Bookstore, *lines: tuple[UUID, int], user_id: UUID | None = None) -> UUID:
    """Fill a cart with `(book_id, quantity)` lines; returns its owner's id.

    With no `user_id`, a new customer; with no lines, one new book and a random quantity.
    """
    owner = user_id if user_id is not None else new_customer(app)
    if not lines:
        item = CartItemPayloadFactory(book_id=new_book(app))
        lines = ((item["book_id"], item["quantity"]),)
    for book_id, quantity in lines:
        app.add_to_cart(ctx(owner), owner, book_id, quantity)
    return owner


def new_order(
    app: Bookstore,
    *lines: tuple[UUID, int],
    user_id: UUID | None = None,
    idempotency_key: str | None = None,
) -> UUID:
    """Fill a cart as `new_cart` does and place it as an order; the order's id."""
    owner = new_cart(app, *lines, user_id=user_id)
    return app.place_order(ctx(owner), owner, idempotency_key=idempotency_key).order_id

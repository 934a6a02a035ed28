"""The application's commands against the real stores: SQLite and PostgreSQL.

The same scenarios as tests/unit/test_application.py, plus what only a real database can
show: events and their metadata read back from the log, snapshots that survive a restart,
and password hashes kept in the credentials table, never in an event.
"""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select

from adapters.write_tables import credentials
from bookstore import bootstrap
from bookstore.bootstrap import Container
from tests.event_log import ORDER_PLACED, all_notifications, count_topic, topic_counts
from tests.factories import ctx, new_book, new_customer
from write_model.application import Bookstore, event_metadata
from write_model.context import CommandContext
from write_model.errors import (
    DuplicateKeyError,
    InsufficientStockError,
    InvalidTransitionError,
    NotFoundError,
    PreconditionFailedError,
)
from write_model.ids import cart_id_for
from write_model.order import OrderStatus


@pytest.fixture
def app(container: Container) -> Bookstore:
    return container.write_app


def head(app: Bookstore) -> int:
    return app.recorder.max_notification_id() or 0


def customer_with_cart(app: Bookstore, *lines: tuple[UUID, int]) -> UUID:
    user_id = new_customer(app)
    for book_id, quantity in lines:
        app.add_to_cart(ctx(user_id), user_id, book_id, quantity)
    return user_id


def test_a_book_is_registered_changed_and_removed_and_its_isbn_reused(app: Bookstore) -> None:
    book_id = new_book(app, title="Dune", isbn="0-306-40615-2", price="9.99", stock=1)
    version = app.get_book(book_id).version
    position = app.change_book(
        ctx(), book_id, expected_version=version, title="Dune Messiah", stock=4
    )
    assert position == head(app)
    with pytest.raises(PreconditionFailedError):
        app.change_book(ctx(), book_id, expected_version=version, title="Stale")

    book = app.get_book(book_id)
    assert (book.title, book.isbn, book.price, book.stock) == (
        "Dune Messiah",
        "9780306406157",
        Decimal("9.99"),
        4,
    )
    with pytest.raises(DuplicateKeyError):
        new_book(app, isbn="9780306406157")

    app.remove_book(ctx(), book_id)
    with pytest.raises(NotFoundError):
        app.get_book(book_id)
    with pytest.raises(NotFoundError):
        app.remove_book(ctx(), book_id)
    reused = new_book(app, isbn="978-0-306-40615-7")
    assert app.find_book_by_isbn("0306406152").id == reused  # type: ignore[union-attr]


def test_an_email_is_unique_whatever_its_case_and_freed_by_a_change(app: Bookstore) -> None:
    user_id = new_customer(app, email="Ada@Example.com")
    with pytest.raises(DuplicateKeyError):
        new_customer(app, email="ADA@example.COM")

    app.change_user_profile(ctx(user_id), user_id, full_name="Ada", email="ada@lovelace.org")

    user = app.get_user(user_id)
    assert (user.email, user.full_name) == ("ada@lovelace.org", "Ada")
    assert app.find_user_by_email("ADA@LOVELACE.ORG").id == user_id  # type: ignore[union-attr]
    assert new_customer(app, email="ada@example.com") != user_id


def test_a_cart_is_filled_changed_and_limited_by_the_stock(app: Bookstore) -> None:
    cheap = new_book(app, price="0.10", stock=3)
    dear = new_book(app, price="0.20", stock=9)
    user_id = customer_with_cart(app, (cheap, 2), (dear, 1))
    app.set_cart_quantity(ctx(), user_id, dear, 5)
    before = head(app)

    with pytest.raises(InsufficientStockError):
        app.add_to_cart(ctx(), user_id, cheap, 2)

    assert head(app) == before
    view = app.view_cart(user_id)
    assert [(i.book_id, i.quantity) for i in view.items] == [(cheap, 2), (dear, 5)]
    assert view.total == Decimal("1.20")
    app.remove_from_cart(ctx(), user_id, cheap)
    assert [i.book_id for i in app.view_cart(user_id).items] == [dear]


def test_an_order_is_placed_advanced_and_cancelled_with_stock_kept_right(app: Bookstore) -> None:
    dune = new_book(app, title="Dune", price="9.99", stock=5)
    emma = new_book(app, title="Emma", price="0.01", stock=1)
    owner = customer_with_cart(app, (dune, 2), (emma, 1))

    placed = app.place_order(ctx(owner), owner)
    assert placed.position == head(app)
    app.change_book(ctx(), dune, price="20.00")

    order = app.get_order(placed.order_id)
    assert [(line.book_id, line.quantity, line.unit_price) for line in order.lines] == [
        (dune, 2, Decimal("9.99")),
        (emma, 1, Decimal("0.01")),
    ]
    assert order.total == Decimal("19.99")
    assert (app.get_book(dune).stock, app.get_book(emma).stock) == (3, 0)
    assert app.view_cart(owner).items == []

    app.advance_order(ctx(), placed.order_id, OrderStatus.PAID)
    with pytest.raises(InvalidTransitionError):
        app.cancel_order(ctx(owner), placed.order_id, actor_id=owner, as_staff=False)
    app.cancel_order(ctx(), placed.order_id, actor_id=uuid4(), as_staff=True)

    assert app.get_order(placed.order_id).status is OrderStatus.CANCELLED
    assert (app.get_book(dune).stock, app.get_book(emma).stock) == (5, 1)


def test_a_repeated_idempotency_key_gives_back_the_first_order(app: Bookstore) -> None:
    book_id = new_book(app, stock=10)
    user_id = customer_with_cart(app, (book_id, 1))
    first = app.place_order(ctx(), user_id, idempotency_key="checkout-1")
    app.add_to_cart(ctx(), user_id, book_id, 1)
    before = head(app)

    again = app.place_order(ctx(), user_id, idempotency_key="checkout-1")

    assert (again.order_id, again.created) == (first.order_id, False)
    assert head(app) == before
    assert count_topic(app, ORDER_PLACED) == 1
    assert app.get_book(book_id).stock == 9


def test_event_metadata_is_stored_and_read_back_from_the_log(app: Bookstore) -> None:
    actor = uuid4()
    book_id = new_book(app)
    user_id = new_customer(app)
    start = head(app)

    app.add_to_cart(CommandContext("req-cart", actor), user_id, book_id, 1)
    app.place_order(CommandContext("req-order", actor), user_id)

    page = app.notification_log.select(start=start + 1, limit=10)
    assert [n.topic.rsplit(":", 1)[1] for n in page] == [
        "Cart.Created",
        "Cart.ItemAdded",
        "Order.Placed",
        "Book.StockReserved",
        "Cart.Cleared",
    ]
    read_back = [
        event_metadata(app.mapper.to_domain_event(n))
        for n in app.recorder.select_notifications(start, 10, inclusive_of_start=False)
    ]
    assert read_back == [
        {"correlation_id": "req-cart", "actor_id": str(actor)},
        {"correlation_id": "req-cart", "actor_id": str(actor)},
        {"correlation_id": "req-order", "actor_id": str(actor)},
        {"correlation_id": "req-order", "actor_id": str(actor)},
        {"correlation_id": "req-order", "actor_id": str(actor)},
    ]


def test_password_hashes_live_in_the_credentials_table_and_never_in_an_event(
    container: Container,
) -> None:
    app = container.write_app
    first_hash = f"$argon2id$v=19$first${uuid4().hex}"
    second_hash = f"$argon2id$v=19$second${uuid4().hex}"
    user_id = app.register_user(ctx(), email="a@example.com", password_hash=first_hash).id
    app.change_password(ctx(user_id), user_id, second_hash)

    with container.write_engine.connect() as connection:
        rows = connection.execute(select(credentials.c.user_id, credentials.c.password_hash)).all()
    assert [tuple(row) for row in rows] == [(str(user_id), second_hash)]
    assert app.password_hash_of(user_id) == second_hash

    states = b"".join(n.state for n in all_notifications(app))
    assert first_hash.encode() not in states
    assert second_hash.encode() not in states
    assert b"argon2" not in states
    assert topic_counts(app)["write_model.user:User.PasswordChanged"] == 1


def test_state_and_snapshots_survive_a_restart(container: Container) -> None:
    app = container.write_app
    book_id = new_book(app, stock=0, price="3.30")
    for _ in range(105):  # past the snapshot interval of books (100)
        app.restock_book(ctx(), book_id, 1)
    user_id = customer_with_cart(app, (book_id, 1))
    for quantity in range(2, 25):  # past the snapshot interval of carts (20)
        app.set_cart_quantity(ctx(), user_id, book_id, quantity)
    assert count_topic(app, "write_model.book:Book.Restocked") == 105

    restarted = bootstrap.build(container.settings)
    try:
        again = restarted.write_app
        assert again.snapshots is not None
        assert list(again.snapshots.get(book_id, desc=True, limit=1))  # a snapshot was taken
        assert list(again.snapshots.get(cart_id_for(user_id), desc=True, limit=1))
        assert again.get_book(book_id).stock == 105
        assert again.get_book(book_id).price == Decimal("3.30")
        view = again.view_cart(user_id)
        assert [(i.book_id, i.quantity) for i in view.items] == [(book_id, 24)]
        assert view.total == Decimal("79.20")
        placed = again.place_order(ctx(user_id), user_id)
        assert again.get_order(placed.order_id).total == Decimal("79.20")
    finally:
        restarted.close()
    assert app.get_book(book_id).stock == 81

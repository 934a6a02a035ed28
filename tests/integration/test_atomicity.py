"""A place_order that fails part-way leaves the log, the stock and the cart as they were.

Placing an order saves the Order, every Book whose stock it takes and the emptied Cart in
one atomic save. These tests read the log itself before and after, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from uuid import UUID

import pytest

from bookstore.bootstrap import Container
from tests.event_log import ORDER_PLACED, count_topic, topic_counts
from tests.factories import ctx, new_book, new_customer
from write_model.application import Bookstore
from write_model.book import Book
from write_model.cart import Cart
from write_model.errors import ConcurrencyError, InsufficientStockError
from write_model.ids import cart_id_for

CART_CLEARED = "write_model.cart:Cart.Cleared"


@dataclass(frozen=True)
class Snapshot:
    """What an order could have touched: the log, each book and the cart."""

    head: int
    topics: dict[str, int]
    books: dict[UUID, tuple[int, int]]  # stock and version
    cart: tuple[list[tuple[UUID, int]], int]  # lines and version


def snapshot(app: Bookstore, user_id: UUID, book_ids: list[UUID]) -> Snapshot:
    books = {}
    for book_id in book_ids:
        book: Book = app.repository.get(book_id)
        books[book_id] = (book.stock, book.version)
    cart: Cart = app.repository.get(cart_id_for(user_id))
    return Snapshot(
        head=app.recorder.max_notification_id() or 0,
        topics=topic_counts(app),
        books=books,
        cart=(cart.items(), cart.version),
    )


def customer_with_cart(app: Bookstore, *lines: tuple[UUID, int]) -> UUID:
    user_id = new_customer(app)
    for book_id, quantity in lines:
        app.add_to_cart(ctx(user_id), user_id, book_id, quantity)
    return user_id


def test_an_order_of_a_book_removed_after_it_was_added_leaves_everything_as_it_was(
    container: Container,
) -> None:
    app = container.write_app
    kept = new_book(app, stock=5)
    removed = new_book(app, title="Withdrawn", stock=5)
    user_id = customer_with_cart(app, (kept, 2), (removed, 1))
    app.remove_book(ctx(), removed)
    before = snapshot(app, user_id, [kept, removed])

    with pytest.raises(InsufficientStockError) as caught:
        app.place_order(ctx(user_id), user_id)

    assert [(s.book_id, s.available) for s in caught.value.shortfalls] == [(removed, 0)]
    after = snapshot(app, user_id, [kept, removed])
    assert after == before
    assert count_topic(app, ORDER_PLACED) == 0
    assert after.books[kept] == (5, before.books[kept][1])
    assert after.cart[0] == [(kept, 2), (removed, 1)]


def test_an_order_whose_second_book_is_short_takes_no_stock_from_the_first(
    container: Container,
) -> None:
    app = container.write_app
    first = new_book(app, title="First", stock=5)
    second = new_book(app, title="Second", stock=3)
    user_id = customer_with_cart(app, (first, 1), (second, 3))
    app.change_book(ctx(), second, stock=2)  # a stock count found one copy fewer
    before = snapshot(app, user_id, [first, second])

    with pytest.raises(InsufficientStockError) as caught:
        app.place_order(ctx(user_id), user_id, idempotency_key="checkout")

    assert [(s.book_id, s.requested, s.available) for s in caught.value.shortfalls] == [
        (second, 3, 2)
    ]
    after = snapshot(app, user_id, [first, second])
    assert after == before
    assert count_topic(app, ORDER_PLACED) == 0
    assert after.books == {first: (5, before.books[first][1]), second: (2, before.books[second][1])}

    # The refused attempt did not spend the idempotency key: the same key works once fixed.
    app.set_cart_quantity(ctx(user_id), user_id, second, 2)
    placed = app.place_order(ctx(user_id), user_id, idempotency_key="checkout")
    assert placed.created is True
    assert (app.get_book(first).stock, app.get_book(second).stock) == (4, 0)


@contextmanager
def store_refusing(container: Container, topic: str) -> Iterator[None]:
    """Make the event store itself refuse to insert any event of `topic` (a trigger)."""
    table = container.write_app.recorder.events_table_name  # type: ignore[attr-defined]
    engine = container.write_engine
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql(
                f"CREATE TRIGGER refuse_topic BEFORE INSERT ON {table} "
                f"WHEN NEW.topic = '{topic}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        else:
            connection.exec_driver_sql(
                "CREATE FUNCTION refuse_topic() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.topic = '{topic}' THEN "
                "RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END IF; "
                "RETURN NEW; END $$"
            )
            connection.exec_driver_sql(
                f"CREATE TRIGGER refuse_topic BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION refuse_topic()"
            )
    try:
        yield
    finally:
        with engine.begin() as connection:
            if engine.dialect.name == "sqlite":
                connection.exec_driver_sql("DROP TRIGGER refuse_topic")
            else:
                connection.exec_driver_sql(f"DROP TRIGGER refuse_topic ON {table}")
                connection.exec_driver_sql("DROP FUNCTION refuse_topic()")


def test_an_order_the_store_refuses_part_way_through_its_save_is_rolled_back_whole(
    container: Container,
) -> None:
    app = container.write_app
    first = new_book(app, stock=5)
    second = new_book(app, stock=5)
    user_id = customer_with_cart(app, (first, 1), (second, 2))
    before = snapshot(app, user_id, [first, second])

    # The save writes Order.Placed and both Book.StockReserved rows before the Cart's
    # Cleared row, which the store refuses: every row of the transaction must go.
    with store_refusing(container, CART_CLEARED), pytest.raises(ConcurrencyError):
        app.place_order(ctx(user_id), user_id)

    assert snapshot(app, user_id, [first, second]) == before
    assert count_topic(app, ORDER_PLACED) == 0

    placed = app.place_order(ctx(user_id), user_id)  # the same order goes through unhindered
    assert placed.created is True
    assert (app.get_book(first).stock, app.get_book(second).stock) == (4, 3)
    assert count_topic(app, ORDER_PLACED) == 1

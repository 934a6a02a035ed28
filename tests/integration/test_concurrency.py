"""Races on PostgreSQL: stock is never oversold, keys are never taken twice.

Every thread waits at a barrier and then fires its command at once; optimistic concurrency
on every aggregate version (with the command's retries) must leave exactly one consistent
outcome.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from uuid import UUID

import pytest
from sqlalchemy import func, select

from adapters.write_tables import credentials
from bookstore import bootstrap
from bookstore.bootstrap import Container
from tests.conftest import make_settings
from tests.event_log import ORDER_PLACED, count_topic
from tests.factories import ctx, new_book, new_customer
from write_model.application import PlacedOrder
from write_model.book import Book
from write_model.errors import DuplicateKeyError, InsufficientStockError

pytestmark = pytest.mark.postgres

T = TypeVar("T")


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Container]:
    settings = make_settings(postgres_url, postgres_pool_size=25)
    bootstrap.migrate(settings)
    wired = bootstrap.build(settings)
    yield wired
    wired.close()


def all_at_once(calls: list[Callable[[], T]]) -> list[T | Exception]:
    """Run every call on its own thread, released together by a barrier."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T | Exception:
        barrier.wait(timeout=30)
        try:
            return call()
        except Exception as error:  # the outcome, whatever it is, is what is asserted
            return error

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_fifty_shoppers_racing_for_five_copies_get_exactly_five_orders(pg: Container) -> None:
    app = pg.write_app
    book_id = new_book(app, stock=5)
    shoppers = []
    for _ in range(50):
        user_id = new_customer(app)
        app.add_to_cart(ctx(user_id), user_id, book_id, 1)
        shoppers.append(user_id)

    def order_for(user_id: UUID) -> Callable[[], PlacedOrder]:
        return lambda: app.place_order(ctx(user_id), user_id)

    outcomes = all_at_once([order_for(u) for u in shoppers])

    placed = [o for o in outcomes if isinstance(o, PlacedOrder)]
    refused = [o for o in outcomes if isinstance(o, InsufficientStockError)]
    others = [o for o in outcomes if not isinstance(o, PlacedOrder | InsufficientStockError)]
    assert others == []
    assert (len(placed), len(refused)) == (5, 45)
    assert len({p.order_id for p in placed}) == 5

    book = app.get_book(book_id)
    assert book.stock == 0
    versions: list[Book] = [
        app.repository.get(book_id, version=v) for v in range(1, book.version + 1)
    ]
    stock_at_each_version = [b.stock for b in versions]
    assert stock_at_each_version == [5, 4, 3, 2, 1, 0]
    assert count_topic(app, ORDER_PLACED) == 5
    assert count_topic(app, "write_model.book:Book.StockReserved") == 5

    # The winners' carts are empty, the losers' carts untouched.
    winners = {app.get_order(p.order_id).user_id for p in placed}
    for user_id in shoppers:
        expected = 0 if user_id in winners else 1
        assert sum(i.quantity for i in app.view_cart(user_id).items) == expected


def test_two_registrations_of_one_email_racing_let_exactly_one_win(pg: Container) -> None:
    app = pg.write_app
    for round_ in range(5):
        emails = [f"Racer{round_}@Example.com", f"racer{round_}@example.COM"]

        def register(email: str) -> Callable[[], UUID]:
            return lambda: app.register_user(ctx(), email=email, password_hash=f"hash-{email}").id

        outcomes = all_at_once([register(e) for e in emails])

        winners = [o for o in outcomes if isinstance(o, UUID)]
        assert len(winners) == 1, outcomes
        assert [type(o) for o in outcomes if not isinstance(o, UUID)] == [DuplicateKeyError]
        found = app.find_user_by_email(emails[0])
        assert found is not None
        assert found.id == winners[0]

    with pg.write_engine.connect() as connection:
        rows = connection.execute(select(func.count()).select_from(credentials)).scalar_one()
    assert rows == 5  # the losers' hashes were removed again
    assert count_topic(app, "write_model.user:User.Registered") == 5


def test_two_checkouts_with_one_idempotency_key_racing_make_one_order(pg: Container) -> None:
    app = pg.write_app
    book_id = new_book(app, stock=10)
    user_id = new_customer(app)
    app.add_to_cart(ctx(user_id), user_id, book_id, 2)

    def checkout() -> PlacedOrder:
        return app.place_order(ctx(user_id), user_id, idempotency_key="double-click")

    outcomes = all_at_once([checkout, checkout])

    assert all(isinstance(o, PlacedOrder) for o in outcomes), outcomes
    orders = [o for o in outcomes if isinstance(o, PlacedOrder)]
    assert orders[0].order_id == orders[1].order_id
    assert sorted(o.created for o in orders) == [False, True]
    assert count_topic(app, ORDER_PLACED) == 1
    assert app.get_book(book_id).stock == 8

"""The write model's batched reads give what the library's one-by-one reads give.

`BatchingRepository` fast-forwards several cached aggregates in one statement and reads a
cold aggregate's snapshot and later events in one (`adapters/event_recorder.py`); SQLite
falls back to the library's reads. Either way a command must see every change another
process made, and a snapshot must be the start of a cold load exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest

from bookstore import bootstrap
from bookstore.bootstrap import Container
from tests.conftest import make_settings
from tests.factories import ctx, new_book, new_customer
from write_model.application import Bookstore
from write_model.book import Book
from write_model.cart import Cart
from write_model.errors import NotFoundError
from write_model.ids import cart_id_for
from write_model.repository import LOCK_STRIPES, BatchingRepository


@pytest.fixture
def other(database_url: str, container: Container) -> Iterator[Bookstore]:
    """A second process's application on the same store (its own cache)."""
    wired = bootstrap.build(make_settings(database_url))
    yield wired.write_app
    wired.close()


def test_cached_books_are_fast_forwarded_together_past_another_process_changes(
    container: Container, other: Bookstore
) -> None:
    app = container.write_app
    books = [new_book(app, stock=5) for _ in range(3)]
    repository = app.repository
    assert isinstance(repository, BatchingRepository)
    first = repository.get_many(books)  # now cached here
    assert [first[b].version for b in books] == [1, 1, 1]

    other.restock_book(ctx(), books[0], 2)
    other.restock_book(ctx(), books[0], 3)
    other.restock_book(ctx(), books[2], 1)

    loaded = repository.get_many([*books, uuid4()])
    assert list(loaded) == books  # asked order, the unknown id left out
    assert [(loaded[b].version, loaded[b].stock) for b in books] == [(3, 10), (1, 5), (2, 6)]  # type: ignore[attr-defined]
    assert all(loaded[b] is not first[b] for b in books)  # copies, never the cached objects
    loaded[books[1]].restock(1)  # type: ignore[attr-defined]
    assert repository.get(books[1]).stock == 5  # a command's change stays out of the cache


def test_a_missing_or_foreign_id_among_a_commands_books_is_not_found(
    container: Container,
) -> None:
    app = container.write_app
    book_id = new_book(app)
    user_id = new_customer(app)
    assert isinstance(app._get_many(Book, [book_id], "Book")[book_id], Book)
    with pytest.raises(NotFoundError):
        app._get_many(Book, [book_id, uuid4()], "Book")
    with pytest.raises(NotFoundError):
        app._get_many(Book, [book_id, user_id], "Book")


def test_a_cold_load_starts_from_the_latest_snapshot_and_applies_the_events_after_it(
    container: Container, other: Bookstore
) -> None:
    app = container.write_app
    book_id = new_book(app, stock=50)
    user_id = new_customer(app)
    for _ in range(Bookstore.snapshotting_intervals[Cart] + 5):
        app.add_to_cart(ctx(user_id), user_id, book_id, 1)
    cart = other._cart_of(user_id)  # not cached in `other`
    assert cart is not None
    assert cart.version == Bookstore.snapshotting_intervals[Cart] + 6
    assert cart.lines == {str(book_id): Bookstore.snapshotting_intervals[Cart] + 5}
    assert app.snapshots is not None
    snapshots = list(app.snapshots.get(cart_id_for(user_id)))
    assert [s.originator_version for s in snapshots] == [Bookstore.snapshotting_intervals[Cart]]

    placed = other.place_order(ctx(user_id), user_id)
    assert app.get_order(placed.order_id).lines[0].quantity == 25
    assert app.get_book(book_id).stock == 25


def test_an_order_sees_what_another_process_did_to_a_cached_cart_and_its_books(
    container: Container, other: Bookstore
) -> None:
    """The cart and the books it names are cached here, then changed elsewhere: a price,
    the stock, and a book added to the cart. The order is of the cart and books as the
    store holds them."""
    app = container.write_app
    first, second = new_book(app, stock=5, price="10.00"), new_book(app, stock=5)
    user_id = new_customer(app)
    app.add_to_cart(ctx(user_id), user_id, first, 2)
    assert app._cart_and_books_of(user_id)[0] is not None  # both cached here now

    other.change_book(ctx(), first, price="12.50")
    other.restock_book(ctx(), first, 3)
    other.add_to_cart(ctx(user_id), user_id, second, 1)

    placed = app.place_order(ctx(user_id), user_id)
    order = other.get_order(placed.order_id)
    assert {(line.book_id, line.quantity, str(line.unit_price)) for line in order.lines} == {
        (first, 2, "12.50"),
        (second, 1, str(other.get_book(second).price)),
    }
    assert other.get_book(first).stock == 6
    assert other.get_book(second).stock == 4
    assert other._cart_of(user_id).lines == {}  # type: ignore[union-attr]


def test_a_save_leaves_this_process_cache_at_the_saved_versions(container: Container) -> None:
    """Nothing to read back after our own writes: the cache holds what was saved."""
    app = container.write_app
    book_id = new_book(app, stock=9)
    user_id = new_customer(app)
    app.add_to_cart(ctx(user_id), user_id, book_id, 4)
    app.place_order(ctx(user_id), user_id)
    repository = app.batching_repository
    assert repository.peek(book_id, lambda book: (book.version, book.stock)) == (2, 5)
    assert repository.peek(cart_id_for(user_id), lambda cart: dict(cart.lines)) == {}


def test_books_sharing_a_lock_stripe_are_fast_forwarded_together(
    container: Container, other: Bookstore
) -> None:
    """Two cached books whose locks are one stripe: a batch takes that lock once."""
    app = container.write_app
    by_stripe: dict[int, list[UUID]] = {}
    while not any(len(ids) > 1 for ids in by_stripe.values()):
        book_id = new_book(app, stock=5)
        by_stripe.setdefault(hash(book_id) % LOCK_STRIPES, []).append(book_id)
    pair = next(ids for ids in by_stripe.values() if len(ids) > 1)[:2]
    repository = app.batching_repository
    repository.get_many(pair)  # cached
    other.restock_book(ctx(), pair[0], 1)
    other.restock_book(ctx(), pair[1], 2)
    loaded = repository.get_many(pair)
    assert [loaded[b].stock for b in pair] == [6, 7]  # type: ignore[attr-defined]

"""Projections on the real databases: save events, catch up, look at the rows."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from bookstore.bootstrap import Container
from read_model.books import BookFilters, get_book, list_books
from read_model.orders import get_order, list_orders
from read_model.tables import (
    book_listing,
    include_for_dialect,
    metadata,
    order_history,
    order_line,
    projection_tracking,
    user_directory,
)
from read_model.users import list_users
from tests.factories import book_payload, ctx
from tests.integration.projection_support import table_rows
from write_model.order import OrderStatus
from write_model.values import Role

READ_TABLES = (book_listing, order_history, order_line, user_directory, projection_tracking)


def catch_up_all(container: Container, batch_size: int = 500) -> None:
    runner = container.projections.runner
    for name in runner.names:
        result = runner.catch_up_fully(name, batch_size=batch_size)
        assert result.caught_up, result


def snapshot(container: Container) -> dict[str, list[dict[str, object]]]:
    return {table.name: table_rows(container.read_engine, table) for table in READ_TABLES}


def test_migrations_create_exactly_the_declared_tables(container: Container) -> None:
    with container.read_engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_object": include_for_dialect(connection.dialect.name),
            },
        )
        assert compare_metadata(context, metadata) == []


def test_catch_up_builds_every_read_table_and_a_second_run_changes_nothing(
    container: Container,
) -> None:
    app = container.write_app
    dune = app.register_book(
        ctx(), **book_payload(title="Dune", author="Frank Herbert", price="9.99", stock=5)
    ).id
    admin = app.register_user(ctx(), email="Boss@Example.com", password_hash="x").id
    app.change_role(ctx(), admin, Role.ADMIN)
    reader = app.register_user(
        ctx(), email="reader@example.com", password_hash="x", full_name="R"
    ).id
    app.add_to_cart(ctx(reader), reader, dune, 2)
    placed = app.place_order(ctx(reader), reader)
    app.advance_order(ctx(), placed.order_id, OrderStatus.PAID)
    head = app.restock_book(ctx(), dune, 10)

    catch_up_all(container)

    with container.read_engine.connect() as connection:
        book = get_book(connection, dune)
        order = get_order(connection, placed.order_id)
        users = list_users(connection, role=None, q=None, is_active=None, limit=10, offset=0)
    assert book is not None
    assert (book["title"], book["author"], book["price"], book["stock"]) == (
        "Dune",
        "Frank Herbert",
        Decimal("9.99"),
        5 - 2 + 10,
    )
    assert book["version"] == app.get_book(dune).version
    assert book["created_at"] < book["updated_at"] <= datetime.now(UTC)
    assert order is not None
    assert order["user_id"] == reader
    assert order["status"] == "paid"
    assert order["total"] == Decimal("19.98")
    assert order["items"] == [
        {
            "book_id": dune,
            "title": "Dune",
            "quantity": 2,
            "unit_price": Decimal("9.99"),
            "line_total": Decimal("19.98"),
        }
    ]
    assert [(u["email"], u["role"], u["full_name"]) for u in users.items] == [
        ("boss@example.com", "admin", ""),
        ("reader@example.com", "customer", "R"),
    ]
    assert all(
        container.projection_position(name) == head
        for name in ("book_listing", "order_history", "user_directory")
    )

    before = snapshot(container)
    for name in container.projections.runner.names:
        again = container.projections.runner.catch_up(name)
        assert (again.applied, again.position) == (0, head)
    assert snapshot(container) == before


def test_small_batches_build_the_same_rows_as_one_large_batch(container: Container) -> None:
    app = container.write_app
    books = [app.register_book(ctx(), **book_payload()).id for _ in range(6)]
    for book in books[::2]:
        app.restock_book(ctx(), book, 3)
    app.change_book(ctx(), books[1], title="Renamed", price="1.50")
    app.remove_book(ctx(), books[3])
    runner = container.projections.runner

    runner.catch_up_fully("book_listing", batch_size=1)
    one_by_one = table_rows(container.read_engine, book_listing)
    with container.read_engine.begin() as connection:
        connection.execute(book_listing.delete())
        connection.execute(projection_tracking.delete())
    runner.catch_up_fully("book_listing", batch_size=1000)

    assert table_rows(container.read_engine, book_listing) == one_by_one
    assert {row["id"] for row in one_by_one} == set(books) - {books[3]}


def test_a_removed_book_leaves_the_listing(container: Container) -> None:
    app = container.write_app
    book = app.register_book(ctx(), **book_payload()).id
    catch_up_all(container)
    app.remove_book(ctx(), book)
    catch_up_all(container)
    with container.read_engine.connect() as connection:
        assert get_book(connection, book) is None
        assert list_books(connection).total == 0


def test_position_covers_the_events_a_projection_ignores(container: Container) -> None:
    app = container.write_app
    app.register_user(ctx(), email="only@example.com", password_hash="x")
    head = app.register_book(ctx(), **book_payload()).id and app.head()

    result = container.projections.runner.catch_up("order_history")

    assert (result.applied, result.position, result.head) == (0, head, head)
    assert container.projection_position("order_history") == head


def test_list_books_filters_sorts_and_pages(container: Container) -> None:
    app = container.write_app
    specs = [
        ("The Left Hand of Darkness", "Ursula K. Le Guin", "8.00", 3, "SF"),
        ("a wizard of earthsea", "ursula k. le guin", "8.00", 0, "Fantasy"),
        ("Dune", "Frank Herbert", "12.50", 7, "sf"),
        ("100% Pure_Fiction", "Anon", "0.00", 1, "Odd"),
        ("Emma", "Jane Austen", "5.25", 0, "Classic"),
    ]
    ids: dict[str, UUID] = {}
    for title, author, price, stock, category in specs:
        ids[title] = app.register_book(
            ctx(),
            **book_payload(title=title, author=author, price=price, stock=stock, category=category),
        ).id
        time.sleep(0.002)  # distinct created_at
    catch_up_all(container)

    def titles(filters: BookFilters | None = None, sort: str = "title", **page: int) -> list[str]:
        with container.read_engine.connect() as connection:
            found = list_books(connection, filters, sort, **page)
        return [book["title"] for book in found.items]

    assert titles() == [
        "100% Pure_Fiction",
        "a wizard of earthsea",
        "Dune",
        "Emma",
        "The Left Hand of Darkness",
    ]
    assert titles(sort="-title")[0] == "The Left Hand of Darkness"
    assert titles(BookFilters(q="LE GUIN")) == ["a wizard of earthsea", "The Left Hand of Darkness"]
    assert titles(BookFilters(q="dar")) == ["The Left Hand of Darkness"]
    assert titles(BookFilters(q="%")) == ["100% Pure_Fiction"]  # a literal, not a wildcard
    assert titles(BookFilters(q="e_f")) == ["100% Pure_Fiction"]
    assert titles(BookFilters(author="URSULA K. LE GUIN")) == [
        "a wizard of earthsea",
        "The Left Hand of Darkness",
    ]
    assert titles(BookFilters(category="SF")) == ["Dune", "The Left Hand of Darkness"]
    assert titles(BookFilters(min_price=Decimal("5.25"), max_price=Decimal("8"))) == [
        "a wizard of earthsea",
        "Emma",
        "The Left Hand of Darkness",
    ]
    assert titles(BookFilters(in_stock=False)) == ["a wizard of earthsea", "Emma"]
    assert titles(BookFilters(in_stock=True, category="sf"), "-price") == [
        "Dune",
        "The Left Hand of Darkness",
    ]
    # Equal prices: ties by id ascending, whichever direction the price sorts.
    tied = sorted([ids["The Left Hand of Darkness"], ids["a wizard of earthsea"]])
    with container.read_engine.connect() as connection:
        for sort in ("price", "-price"):
            found = list_books(
                connection, BookFilters(min_price=Decimal(8), max_price=Decimal(8)), sort
            )
            assert [book["id"] for book in found.items] == tied
        newest = list_books(connection, None, "-created_at", limit=2, offset=1)
    assert [book["title"] for book in newest.items] == ["100% Pure_Fiction", "Dune"]
    assert (newest.total, newest.limit, newest.offset) == (5, 2, 1)
    assert titles(sort="created_at") == [spec[0] for spec in specs]
    assert titles(limit=2, offset=4) == ["The Left Hand of Darkness"]


def test_list_orders_newest_first_per_user(container: Container) -> None:
    app = container.write_app
    book = app.register_book(ctx(), **book_payload(stock=50)).id
    alice = app.register_user(ctx(), email="alice@example.com", password_hash="x").id
    bob = app.register_user(ctx(), email="bob@example.com", password_hash="x").id
    placed: dict[UUID, list[UUID]] = {alice: [], bob: []}
    for buyer in (alice, bob, alice, alice):
        app.add_to_cart(ctx(buyer), buyer, book, 1)
        placed[buyer].append(app.place_order(ctx(buyer), buyer).order_id)
        time.sleep(0.002)
    app.cancel_order(ctx(alice), placed[alice][0], actor_id=alice, as_staff=False)
    catch_up_all(container)

    with container.read_engine.connect() as connection:
        mine = list_orders(connection, user_id=alice, limit=2, offset=0)
        everyone = list_orders(connection, limit=10, offset=0)
        first = get_order(connection, placed[alice][0])
    assert [order["id"] for order in mine.items] == placed[alice][:0:-1]
    assert mine.total == 3
    assert everyone.total == 4
    assert {order["user_id"] for order in everyone.items} == {alice, bob}
    assert first is not None
    assert first["status"] == "cancelled"


def test_list_users_filters_by_role_email_and_activity(container: Container) -> None:
    app = container.write_app
    ids = {
        email: app.register_user(ctx(), email=email, password_hash="x").id
        for email in ("zed@example.com", "amy@shop.example", "bo_b@example.com")
    }
    app.change_role(ctx(), ids["amy@shop.example"], Role.STAFF)
    app.set_user_active(ctx(), ids["zed@example.com"], is_active=False)
    catch_up_all(container)

    def emails(**filters: object) -> list[str]:
        args: dict[str, object] = {
            "role": None,
            "q": None,
            "is_active": None,
            "limit": 10,
            "offset": 0,
        }
        args.update(filters)
        with container.read_engine.connect() as connection:
            page = list_users(connection, **args)  # type: ignore[arg-type]
        return [user["email"] for user in page.items]

    assert emails() == ["amy@shop.example", "bo_b@example.com", "zed@example.com"]
    assert emails(role="staff") == ["amy@shop.example"]
    assert emails(q="EXAMPLE.COM") == ["bo_b@example.com", "zed@example.com"]
    assert emails(q="_") == ["bo_b@example.com"]
    assert emails(is_active=False) == ["zed@example.com"]
    with container.read_engine.connect() as connection:
        page = list_users(connection, role=None, q=None, is_active=True, limit=1, offset=1)
        (user,) = page.items
        stored = connection.execute(select(user_directory.c.version)).scalars().all()
    assert (page.total, user["email"], user["is_active"]) == (2, "bo_b@example.com", True)
    assert user["created_at"].tzinfo is not None
    assert user["id"] == ids["bo_b@example.com"]
    assert all(version >= 1 for version in stored)


def test_status_shows_lag_in_events_and_seconds_then_up_to_date(container: Container) -> None:
    app = container.write_app
    app.register_book(ctx(), **book_payload())
    time.sleep(0.05)
    head = app.register_book(ctx(), **book_payload()).id and app.head()

    lagging = {status.name: status for status in container.projection_statuses()}
    assert lagging["book_listing"].lag_events == head
    assert lagging["book_listing"].lag_seconds >= 0.05
    assert lagging["book_listing"].state == "catching_up"

    catch_up_all(container)
    caught_up = {status.name: status.as_dict() for status in container.projection_statuses()}
    assert caught_up["book_listing"] == {
        "name": "book_listing",
        "position": head,
        "head": head,
        "lag_events": 0,
        "lag_seconds": 0.0,
        "state": "up_to_date",
        "last_error": None,
        "error_position": None,
        "version": 1,
        "rebuild": None,
    }

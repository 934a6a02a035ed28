"""The Bookstore application's commands on the in-memory (popo) event store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from tests.event_log import ORDER_PLACED, all_notifications, count_topic
from tests.factories import book_payload, ctx, new_book, new_customer
from write_model.application import Bookstore, event_metadata
from write_model.book import Book
from write_model.context import CommandContext
from write_model.errors import (
    ConflictError,
    DuplicateKeyError,
    EmptyCartError,
    InsufficientStockError,
    InvalidTransitionError,
    InvalidValueError,
    NotFoundError,
    PreconditionFailedError,
)
from write_model.order import OrderStatus
from write_model.values import Role


@pytest.fixture
def app() -> Iterator[Bookstore]:
    bookstore = Bookstore(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield bookstore
    bookstore.close()


def head(app: Bookstore) -> int:
    return app.recorder.max_notification_id() or 0


def customer_with_cart(app: Bookstore, *lines: tuple[UUID, int]) -> UUID:
    user_id = new_customer(app)
    for book_id, quantity in lines:
        app.add_to_cart(ctx(user_id), user_id, book_id, quantity)
    return user_id


# ----------------------------------------------------------------- events and positions


def test_every_event_carries_the_correlation_id_and_actor_of_its_command(app: Bookstore) -> None:
    actor = uuid4()
    book_id = new_book(app)
    user_id = new_customer(app)
    start = head(app)

    app.add_to_cart(CommandContext("req-cart", actor), user_id, book_id, 2)
    app.place_order(CommandContext("req-order", actor), user_id)
    app.register_book(CommandContext.system("demo-data"), **book_payload())

    events = [app.mapper.to_domain_event(n) for n in all_notifications(app)[start:]]
    metadata = [event_metadata(e) for e in events]
    assert metadata[0] == {"correlation_id": "req-cart", "actor_id": str(actor)}
    order_events = [m for m in metadata if m["correlation_id"] == "req-order"]
    assert len(order_events) == 3  # Order.Placed, Book.StockReserved, Cart.Cleared
    assert all(m["actor_id"] == str(actor) for m in order_events)
    assert metadata[-1]["actor_id"] is None
    assert str(metadata[-1]["correlation_id"]).startswith("demo-data-")
    assert all(set(m) == {"correlation_id", "actor_id"} for m in metadata)


def test_no_stored_event_contains_a_password_hash(app: Bookstore) -> None:
    first_hash, second_hash = f"$argon2id$first${uuid4().hex}", f"$argon2id$second${uuid4().hex}"
    user_id = app.register_user(ctx(), email="a@example.com", password_hash=first_hash).id
    app.change_password(ctx(user_id), user_id, second_hash)

    assert app.password_hash_of(user_id) == second_hash
    states = b"".join(n.state for n in all_notifications(app))
    assert first_hash.encode() not in states
    assert second_hash.encode() not in states
    assert b"argon2" not in states
    assert app.get_user(user_id).session_version == 1


def test_each_command_returns_the_store_position_of_its_last_event(app: Bookstore) -> None:
    c = ctx()
    book = app.register_book(c, **book_payload(stock=5))
    assert book.position == head(app)
    other_book = new_book(app)
    user = app.register_user(c, email="a@example.com", password_hash="h")
    assert user.position == head(app)
    order_ids: list[UUID] = []

    def place() -> int:
        placed = app.place_order(c, user.id)
        order_ids.append(placed.order_id)
        return placed.position

    commands: list[Callable[[], int]] = [
        lambda: app.change_book(c, book.id, price="13.00"),
        lambda: app.restock_book(c, book.id, 2),
        lambda: app.add_to_cart(c, user.id, book.id, 1),
        lambda: app.add_to_cart(c, user.id, other_book, 1),
        lambda: app.set_cart_quantity(c, user.id, book.id, 3),
        lambda: app.remove_from_cart(c, user.id, other_book),
        place,
        lambda: app.advance_order(c, order_ids[0], OrderStatus.PAID),
        lambda: app.cancel_order(c, order_ids[0], actor_id=uuid4(), as_staff=True),
        lambda: app.change_user_profile(c, user.id, full_name="Ada", email="ada@example.com"),
        lambda: app.change_password(c, user.id, "h2"),
        lambda: app.remove_book(c, other_book),
    ]
    for command in commands:
        before = head(app)
        position = command()
        assert position == head(app)
        assert position > before


def test_a_command_that_changes_nothing_returns_the_head_and_records_nothing(
    app: Bookstore,
) -> None:
    user_id = new_customer(app, full_name="")
    before = head(app)
    assert app.clear_cart(ctx(), user_id) == before
    assert app.change_user_profile(ctx(), user_id, full_name="") == before
    assert head(app) == before


# ----------------------------------------------------------------- books


def test_a_book_can_be_registered_changed_restocked_and_read_back(app: Bookstore) -> None:
    book_id = new_book(app, title="Dune", price="9.99", stock=1)
    app.change_book(ctx(), book_id, title="Dune Messiah", stock=4)
    app.restock_book(ctx(), book_id, 2)

    book = app.get_book(book_id)
    assert (book.title, book.price, book.stock) == ("Dune Messiah", Decimal("9.99"), 6)
    assert app.get_book(book_id, version=1).title == "Dune"


def test_a_stale_expected_version_is_refused_and_records_nothing(app: Bookstore) -> None:
    book_id = new_book(app, title="First")
    version = app.get_book(book_id).version
    app.change_book(ctx(), book_id, expected_version=version, title="Second")
    before = head(app)

    with pytest.raises(PreconditionFailedError):
        app.change_book(ctx(), book_id, expected_version=version, title="Third")

    assert head(app) == before
    assert app.get_book(book_id).title == "Second"


def test_removed_books_are_not_found(app: Bookstore) -> None:
    book_id = new_book(app)
    user_id = new_customer(app)
    app.remove_book(ctx(), book_id)

    commands: list[Callable[[], object]] = [
        lambda: app.get_book(book_id),
        lambda: app.remove_book(ctx(), book_id),
        lambda: app.add_to_cart(ctx(), user_id, book_id, 1),
        lambda: app.change_book(ctx(), book_id, title="Back"),
        lambda: app.restock_book(ctx(), book_id, 1),
    ]
    before = head(app)
    for command in commands:
        with pytest.raises(NotFoundError):
            command()
    assert head(app) == before
    with pytest.raises(NotFoundError):
        app.get_book(uuid4())


def test_an_isbn_is_unique_in_every_spelling_until_its_book_is_removed(app: Bookstore) -> None:
    first = new_book(app, isbn="978-0-306-40615-7")
    before = head(app)
    for spelling in ["9780306406157", "0-306-40615-2", " 0306406152 "]:
        with pytest.raises(DuplicateKeyError):
            new_book(app, isbn=spelling)
    assert head(app) == before

    app.remove_book(ctx(), first)
    second = new_book(app, isbn="0306406152")
    found = app.find_book_by_isbn("978-0306406157")
    assert found is not None
    assert found.id == second


def test_changing_an_isbn_frees_the_old_one_and_refuses_a_taken_one(app: Bookstore) -> None:
    book_id = new_book(app, isbn="9780306406157")
    taken = new_book(app, isbn="9780804429573")

    with pytest.raises(DuplicateKeyError):
        app.change_book(ctx(), book_id, isbn="080442957X")
    app.change_book(ctx(), book_id, isbn="9791034304479")

    assert app.get_book(book_id).isbn == "9791034304479"
    assert app.get_book(taken).isbn == "9780804429573"
    reused = new_book(app, isbn="9780306406157")
    assert app.find_book_by_isbn("9780306406157").id == reused  # type: ignore[union-attr]


# ----------------------------------------------------------------- users


def test_an_email_is_unique_whatever_its_case(app: Bookstore) -> None:
    user_id = new_customer(app, email="Ada@Example.com")
    before = head(app)
    with pytest.raises(DuplicateKeyError):
        new_customer(app, email="ada@EXAMPLE.COM")
    assert head(app) == before
    found = app.find_user_by_email("ADA@example.com")
    assert found is not None
    assert found.id == user_id
    assert app.find_user_by_email("not an email") is None


def test_a_changed_email_frees_the_old_address(app: Bookstore) -> None:
    user_id = new_customer(app, email="old@example.com")
    other = new_customer(app, email="other@example.com")
    with pytest.raises(DuplicateKeyError):
        app.change_user_profile(ctx(), user_id, email="Other@example.com")

    app.change_user_profile(ctx(), user_id, email="New@Example.com")

    assert app.get_user(user_id).email == "new@example.com"
    assert app.find_user_by_email("old@example.com") is None
    assert new_customer(app, email="old@example.com") not in (user_id, other)


def test_ensure_admin_creates_then_leaves_unchanged_then_promotes(app: Bookstore) -> None:
    admin_id, outcome = app.ensure_admin(ctx(), email="Boss@example.com", password_hash="h")
    assert outcome == "created"
    admin = app.get_user(admin_id)
    assert (admin.email, admin.role, admin.is_active) == ("boss@example.com", Role.ADMIN, True)
    assert app.password_hash_of(admin_id) == "h"

    assert app.ensure_admin(ctx(), email="boss@example.com", password_hash="other") == (
        admin_id,
        "unchanged",
    )
    assert app.password_hash_of(admin_id) == "h"

    customer = new_customer(app, email="clerk@example.com")
    assert app.ensure_admin(ctx(), email="clerk@example.com", password_hash="x") == (
        customer,
        "promoted",
    )
    assert app.get_user(customer).role is Role.ADMIN


def test_ensure_admin_reactivates_a_deactivated_admin(app: Bookstore) -> None:
    first, _ = app.ensure_admin(ctx(), email="one@example.com", password_hash="h")
    second, _ = app.ensure_admin(ctx(), email="two@example.com", password_hash="h")
    app.set_user_active(ctx(), second, is_active=False)

    assert app.ensure_admin(ctx(), email="two@example.com", password_hash="h")[1] == "promoted"
    assert app.get_user(second).is_active is True
    app.set_user_active(ctx(), first, is_active=False)  # allowed: `second` is active again


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(app: Bookstore) -> None:
    first, _ = app.ensure_admin(ctx(), email="one@example.com", password_hash="h")
    before = head(app)
    with pytest.raises(ConflictError):
        app.change_role(ctx(), first, Role.STAFF)
    with pytest.raises(ConflictError):
        app.set_user_active(ctx(), first, is_active=False)
    assert head(app) == before

    second, _ = app.ensure_admin(ctx(), email="two@example.com", password_hash="h")
    app.change_role(ctx(), first, Role.CUSTOMER)
    assert app.get_user(first).role is Role.CUSTOMER
    with pytest.raises(ConflictError):
        app.change_role(ctx(), second, Role.STAFF)
    with pytest.raises(ConflictError):
        app.set_user_active(ctx(), second, is_active=False)
    assert app.get_user(second).role is Role.ADMIN
    assert app.get_user(second).is_active is True


def test_a_deactivated_admin_does_not_count_as_an_active_admin(app: Bookstore) -> None:
    first, _ = app.ensure_admin(ctx(), email="one@example.com", password_hash="h")
    second, _ = app.ensure_admin(ctx(), email="two@example.com", password_hash="h")
    app.set_user_active(ctx(), second, is_active=False)
    with pytest.raises(ConflictError):
        app.change_role(ctx(), first, Role.STAFF)
    app.change_role(ctx(), second, Role.STAFF)  # an inactive admin may be demoted
    assert app.get_user(second).role is Role.STAFF


# ----------------------------------------------------------------- carts


def test_a_cart_line_may_not_exceed_the_stock(app: Bookstore) -> None:
    book_id = new_book(app, stock=3)
    user_id = new_customer(app)
    app.add_to_cart(ctx(), user_id, book_id, 2)
    before = head(app)

    with pytest.raises(InsufficientStockError) as caught:
        app.add_to_cart(ctx(), user_id, book_id, 2)
    assert caught.value.shortfalls[0].requested == 4
    assert caught.value.shortfalls[0].available == 3
    with pytest.raises(InsufficientStockError):
        app.set_cart_quantity(ctx(), user_id, book_id, 4)

    assert head(app) == before
    assert app.view_cart(user_id).items[0].quantity == 2


def test_a_cart_shows_current_prices_and_exact_totals(app: Bookstore) -> None:
    cheap = new_book(app, price="0.10", stock=50)
    dear = new_book(app, price="0.20", stock=50)
    user_id = customer_with_cart(app, (cheap, 3), (dear, 1))
    app.set_cart_quantity(ctx(), user_id, dear, 2)

    view = app.view_cart(user_id)
    assert [(i.book_id, i.quantity) for i in view.items] == [(cheap, 3), (dear, 2)]
    assert view.total == Decimal("0.70")
    app.change_book(ctx(), cheap, price="1.00")
    assert app.view_cart(user_id).total == Decimal("3.40")

    app.remove_from_cart(ctx(), user_id, cheap)
    assert [i.book_id for i in app.view_cart(user_id).items] == [dear]
    with pytest.raises(NotFoundError):
        app.remove_from_cart(ctx(), user_id, cheap)
    app.clear_cart(ctx(), user_id)
    assert app.view_cart(user_id).items == []


def test_a_cart_line_of_a_removed_book_is_shown_unavailable(app: Bookstore) -> None:
    book_id = new_book(app)
    user_id = customer_with_cart(app, (book_id, 1))
    app.remove_book(ctx(), book_id)
    [item] = app.view_cart(user_id).items
    assert item.available is False
    assert app.view_cart(user_id).total == Decimal("0.00")


def test_a_missing_cart_or_line_is_not_found(app: Bookstore) -> None:
    book_id = new_book(app)
    user_id = new_customer(app)
    with pytest.raises(NotFoundError):
        app.set_cart_quantity(ctx(), user_id, book_id, 1)
    with pytest.raises(NotFoundError):
        app.remove_from_cart(ctx(), user_id, book_id)
    with pytest.raises(InvalidValueError):
        app.add_to_cart(ctx(), user_id, book_id, 0)


# ----------------------------------------------------------------- orders


def test_placing_an_order_snapshots_prices_takes_stock_and_empties_the_cart(
    app: Bookstore,
) -> None:
    dune = new_book(app, title="Dune", price="9.99", stock=5)
    emma = new_book(app, title="Emma", price="0.01", stock=1)
    user_id = customer_with_cart(app, (dune, 2), (emma, 1))

    placed = app.place_order(ctx(user_id), user_id)
    app.change_book(ctx(), dune, price="20.00")

    order = app.get_order(placed.order_id)
    assert placed.created is True
    assert order.user_id == user_id
    assert [(line.title, line.quantity, line.unit_price) for line in order.lines] == [
        ("Dune", 2, Decimal("9.99")),
        ("Emma", 1, Decimal("0.01")),
    ]
    assert order.total == Decimal("19.99")
    assert order.status is OrderStatus.PENDING
    assert (app.get_book(dune).stock, app.get_book(emma).stock) == (3, 0)
    assert app.view_cart(user_id).items == []


def test_an_empty_cart_cannot_be_ordered(app: Bookstore) -> None:
    user_id = new_customer(app)
    with pytest.raises(EmptyCartError):
        app.place_order(ctx(), user_id)


def test_a_repeated_idempotency_key_gives_back_the_same_order_and_records_nothing(
    app: Bookstore,
) -> None:
    book_id = new_book(app, stock=10)
    user_id = customer_with_cart(app, (book_id, 1))
    first = app.place_order(ctx(), user_id, idempotency_key="checkout-1")
    app.add_to_cart(ctx(), user_id, book_id, 2)
    before = head(app)

    again = app.place_order(ctx(), user_id, idempotency_key="checkout-1")

    assert (again.order_id, again.created) == (first.order_id, False)
    assert head(app) == before
    assert count_topic(app, ORDER_PLACED) == 1
    assert app.get_book(book_id).stock == 9

    other = app.place_order(ctx(), user_id, idempotency_key="checkout-2")
    assert other.created is True
    assert other.order_id != first.order_id
    assert app.get_book(book_id).stock == 7


def test_one_idempotency_key_is_per_user(app: Bookstore) -> None:
    book_id = new_book(app, stock=10)
    alice = customer_with_cart(app, (book_id, 1))
    bob = customer_with_cart(app, (book_id, 1))
    first = app.place_order(ctx(), alice, idempotency_key="k")
    second = app.place_order(ctx(), bob, idempotency_key="k")
    assert second.created is True
    assert second.order_id != first.order_id


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_an_idempotency_key_must_be_1_to_255_characters(app: Bookstore, key: str) -> None:
    book_id = new_book(app)
    user_id = customer_with_cart(app, (book_id, 1))
    with pytest.raises(InvalidValueError):
        app.place_order(ctx(), user_id, idempotency_key=key)


def test_an_order_short_of_stock_names_every_short_line_and_changes_nothing(
    app: Bookstore,
) -> None:
    plenty = new_book(app, stock=5)
    scarce = new_book(app, title="Scarce", stock=2)
    user_id = customer_with_cart(app, (plenty, 1), (scarce, 2))
    app.change_book(ctx(), scarce, stock=1)
    before = head(app)

    with pytest.raises(InsufficientStockError) as caught:
        app.place_order(ctx(), user_id)

    assert [(s.title, s.requested, s.available) for s in caught.value.shortfalls] == [
        ("Scarce", 2, 1)
    ]
    assert head(app) == before
    assert len(app.view_cart(user_id).items) == 2


def test_cancelling_puts_the_stock_back(app: Bookstore) -> None:
    book_id = new_book(app, stock=4)
    user_id = customer_with_cart(app, (book_id, 3))
    placed = app.place_order(ctx(), user_id)
    assert app.get_book(book_id).stock == 1

    app.cancel_order(ctx(), placed.order_id, actor_id=user_id, as_staff=False)

    assert app.get_order(placed.order_id).status is OrderStatus.CANCELLED
    assert app.get_book(book_id).stock == 4


def test_a_customer_cannot_see_or_cancel_another_customers_order(app: Bookstore) -> None:
    book_id = new_book(app)
    owner = customer_with_cart(app, (book_id, 1))
    placed = app.place_order(ctx(), owner)
    stranger = new_customer(app)

    with pytest.raises(NotFoundError):
        app.order_for(placed.order_id, actor_id=stranger, as_staff=False)
    with pytest.raises(NotFoundError):
        app.cancel_order(ctx(), placed.order_id, actor_id=stranger, as_staff=False)
    assert app.order_for(placed.order_id, actor_id=stranger, as_staff=True).id == placed.order_id
    assert app.get_order(placed.order_id).status is OrderStatus.PENDING


def test_an_owner_cannot_cancel_a_paid_order_but_staff_can(app: Bookstore) -> None:
    book_id = new_book(app, stock=2)
    owner = customer_with_cart(app, (book_id, 2))
    placed = app.place_order(ctx(), owner)
    app.advance_order(ctx(), placed.order_id, OrderStatus.PAID)

    with pytest.raises(InvalidTransitionError):
        app.cancel_order(ctx(), placed.order_id, actor_id=owner, as_staff=False)
    assert app.get_book(book_id).stock == 0

    app.cancel_order(ctx(), placed.order_id, actor_id=uuid4(), as_staff=True)
    assert app.get_book(book_id).stock == 2


def test_an_order_advances_only_one_step_at_a_time(app: Bookstore) -> None:
    book_id = new_book(app)
    owner = customer_with_cart(app, (book_id, 1))
    order_id = app.place_order(ctx(), owner).order_id
    with pytest.raises(InvalidTransitionError):
        app.advance_order(ctx(), order_id, OrderStatus.SHIPPED)
    for status in (OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED):
        app.advance_order(ctx(), order_id, status)
    assert app.get_order(order_id).status is OrderStatus.DELIVERED
    with pytest.raises(InvalidTransitionError):
        app.cancel_order(ctx(), order_id, actor_id=uuid4(), as_staff=True)


def test_name_email_and_password_change_together_in_one_step(app: Bookstore) -> None:
    user_id = new_customer(app)
    app.credentials.set_password_hash(user_id, "old-hash")
    before = app.get_user(user_id).session_version
    position = app.change_user_profile(
        ctx(user_id),
        user_id,
        full_name="New Name",
        email="renamed@example.com",
        password_hash="new-hash",
    )
    user = app.get_user(user_id)
    assert (user.full_name, user.email) == ("New Name", "renamed@example.com")
    assert user.session_version == before + 1
    assert app.password_hash_of(user_id) == "new-hash"
    assert position == app.recorder.max_notification_id()
    assert app.find_user_by_email("renamed@example.com") is not None


def test_a_failed_save_leaves_the_old_password_hash_and_changes_nothing(
    app: Bookstore, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id = new_customer(app)
    app.credentials.set_password_hash(user_id, "old-hash")
    head = app.recorder.max_notification_id()

    def broken_save(*_: object, **__: object) -> None:
        raise RuntimeError("the event store went away")

    monkeypatch.setattr(app, "save", broken_save)
    with pytest.raises(RuntimeError):
        app.change_user_profile(ctx(user_id), user_id, full_name="X", password_hash="new-hash")
    monkeypatch.undo()
    assert app.password_hash_of(user_id) == "old-hash"
    assert app.recorder.max_notification_id() == head
    assert app.get_user(user_id).full_name != "X"


def test_an_email_spelled_decomposed_finds_the_same_account(app: Bookstore) -> None:
    composed = app.register_user(ctx(), email="J\u00d6RG@example.com", password_hash="h")
    decomposed = app.find_user_by_email("jo\u0308rg@example.com")
    assert decomposed is not None
    assert decomposed.id == composed.id
    with pytest.raises(DuplicateKeyError):
        app.register_user(ctx(), email="JO\u0308RG@example.com", password_hash="h")


def test_the_process_environment_cannot_reconfigure_the_event_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOOKSTORE_PERSISTENCE_MODULE", "eventsourcing.sqlite")
    monkeypatch.setenv("PERSISTENCE_MODULE", "eventsourcing.sqlite")
    monkeypatch.setenv("BOOKSTORE_CREATE_TABLE", "y")
    monkeypatch.setenv("BOOKSTORE_POSTGRES_ENABLE_DB_FUNCTIONS", "y")
    bookstore = Bookstore(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    try:
        assert bookstore.env.get("PERSISTENCE_MODULE") == "eventsourcing.popo"
        assert bookstore.env.get("CREATE_TABLE") is None
        assert bookstore.env.get("POSTGRES_ENABLE_DB_FUNCTIONS") == "n"
    finally:
        bookstore.close()


@pytest.mark.parametrize("winner_lands", ["before the cart is loaded", "before the order is saved"])
def test_a_request_racing_with_its_own_idempotency_key_gets_the_first_order(
    app: Bookstore, monkeypatch: pytest.MonkeyPatch, winner_lands: str
) -> None:
    """The loser checked the key before the winner saved, then met the emptied cart (or
    lost the race to save): it is a retry, and answers the winner's order."""
    book_id = new_book(app, stock=1)
    user_id = new_customer(app)
    app.add_to_cart(ctx(), user_id, book_id, 1)
    step = "_cart_and_books_of" if winner_lands == "before the cart is loaded" else "_save"
    original = getattr(app, step)
    winner: list[UUID] = []

    def winner_first(*args: object, **kwargs: object) -> object:
        if not winner:
            monkeypatch.setattr(app, step, original)
            winner.append(app.place_order(ctx(), user_id, idempotency_key="k-1").order_id)
        return original(*args, **kwargs)

    monkeypatch.setattr(app, step, winner_first)
    loser = app.place_order(ctx(), user_id, idempotency_key="k-1")
    assert loser.order_id == winner[0]
    assert loser.created is False
    assert count_topic(app, ORDER_PLACED) == 1


# ----------------------------------------------------------------- snapshots


def latest_snapshot_state(app: Bookstore, aggregate_id: UUID) -> tuple[int, dict[str, object]]:
    assert app.snapshots is not None
    (snapshot,) = app.snapshots.get(aggregate_id, desc=True, limit=1)
    state = dict(snapshot.state)  # type: ignore[attr-defined]
    return snapshot.originator_version, state


def test_a_snapshot_taken_at_save_is_the_state_a_replay_gives(
    app: Bookstore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Taken from the saved aggregate itself, not read back: it must hold exactly what the
    library's read-back snapshot of that version holds."""
    interval = Bookstore.snapshotting_intervals[Book]
    book_id = new_book(app, stock=5)

    def read_back(*args: object, **kwargs: object) -> None:
        raise AssertionError("the snapshot was read back")

    monkeypatch.setattr(app, "take_snapshot", read_back)
    for _ in range(interval - 1):
        app.restock_book(ctx(), book_id, 1)
    monkeypatch.undo()
    version, state = latest_snapshot_state(app, book_id)
    assert version == interval
    replayed: Book = app.repository.get(book_id, version=interval)
    expected = dict(vars(replayed))
    for private in ("_id", "_version", "_pending_events"):
        expected.pop(private)
    expected["class_version"] = Book.class_version
    assert state == expected
    assert state["stock"] == 5 + interval - 1


def test_an_aggregate_past_the_snapshot_version_in_the_same_save_is_read_back(
    app: Bookstore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two events in one save, the interval's version the first: the snapshot is of that
    version (read back the library's way), not of the aggregate as saved."""
    interval = Bookstore.snapshotting_intervals[Book]
    book_id = new_book(app, stock=5)
    for _ in range(interval - 2):
        app.restock_book(ctx(), book_id, 1)
    book = app.get_book(book_id)
    assert book.version == interval - 1
    book.restock(10)  # version `interval`
    book.restock(100)  # one past it
    read_back = app.take_snapshot
    versions: list[int | None] = []

    def spy(aggregate_id: UUID, version: int | None = None, **kwargs: object) -> None:
        versions.append(version)
        read_back(aggregate_id, version, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app, "take_snapshot", spy)
    app.save(book)
    assert versions == [interval]
    version, state = latest_snapshot_state(app, book_id)
    assert version == interval
    assert state["stock"] == 5 + interval - 2 + 10

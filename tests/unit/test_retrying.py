"""`retrying_on_conflict`: a command that loses a race runs again from the top, a few times."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from tests.event_log import topic_counts
from tests.factories import ctx, new_book, new_customer
from write_model.application import Bookstore
from write_model.errors import ConcurrencyError, InsufficientStockError
from write_model.plumbing import BASE_BACKOFF_SECONDS


@pytest.fixture
def app() -> Iterator[Bookstore]:
    bookstore = Bookstore(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield bookstore
    bookstore.close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The back-off delays, recorded instead of slept."""
    delays: list[float] = []
    monkeypatch.setattr("write_model.plumbing.time.sleep", delays.append)
    return delays


def losing_saves(monkeypatch: pytest.MonkeyPatch, app: Bookstore, losses: int) -> list[int]:
    """Make the next `losses` saves lose a race; returns the list of save calls seen."""
    calls: list[int] = []
    real_save = app.save

    def save(*objs: Any, **kwargs: Any) -> Any:
        calls.append(len(calls))
        if len(calls) <= losses:
            raise IntegrityError("simulated lost race")
        return real_save(*objs, **kwargs)

    monkeypatch.setattr(app, "save", save)
    return calls


def test_a_command_that_loses_a_race_runs_again_and_records_its_events_once(
    app: Bookstore, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    book_id = new_book(app, stock=5)
    user_id = new_customer(app)
    before = topic_counts(app)
    calls = losing_saves(monkeypatch, app, losses=2)

    position = app.add_to_cart(ctx(), user_id, book_id, 2)

    assert len(calls) == 3
    assert len(sleeps) == 2
    assert position == app.head()
    assert app.view_cart(user_id).total_quantity == 2
    after = topic_counts(app)
    assert after.pop("write_model.cart:Cart.Created") == 1
    assert after.pop("write_model.cart:Cart.ItemAdded") == 1
    assert after == before


def test_after_max_attempts_lost_races_the_caller_gets_a_concurrency_error(
    app: Bookstore, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    book_id = new_book(app)
    calls = losing_saves(monkeypatch, app, losses=10_000)

    with pytest.raises(ConcurrencyError):
        app.restock_book(ctx(), book_id, 1)

    assert len(calls) == app.max_attempts
    # No sleep after the last attempt; each back-off is jittered below a doubling bound.
    assert len(sleeps) == app.max_attempts - 1
    assert all(0 <= s <= BASE_BACKOFF_SECONDS * 2**n for n, s in enumerate(sleeps))


def test_a_domain_error_is_raised_at_once_and_never_retried(
    app: Bookstore, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    book_id = new_book(app, stock=1)
    user_id = new_customer(app)
    calls = losing_saves(monkeypatch, app, losses=0)

    with pytest.raises(InsufficientStockError):
        app.add_to_cart(ctx(), user_id, book_id, 2)

    assert calls == []
    assert sleeps == []


def test_a_registration_that_loses_a_race_keeps_the_hash_it_stored_on_the_retry(
    app: Bookstore, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    losing_saves(monkeypatch, app, losses=1)

    user_id = app.register_user(ctx(), email="racer@example.com", password_hash="$argon2id$x").id

    assert app.password_hash_of(user_id) == "$argon2id$x"
    assert app.find_user_by_email("racer@example.com") is not None
    assert len(sleeps) == 1


def test_a_registration_that_never_wins_leaves_no_hash_behind(
    app: Bookstore, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    stored: list[Any] = []
    real_set = app.credentials.set_password_hash

    def set_password_hash(user_id: Any, password_hash: str) -> None:
        stored.append(user_id)
        real_set(user_id, password_hash)

    monkeypatch.setattr(app.credentials, "set_password_hash", set_password_hash)
    losing_saves(monkeypatch, app, losses=10_000)

    with pytest.raises(ConcurrencyError):
        app.register_user(ctx(), email="loser@example.com", password_hash="$argon2id$y")

    assert len(stored) == app.max_attempts
    assert all(app.password_hash_of(user_id) is None for user_id in stored)


def test_the_decorator_keeps_the_command_s_name_and_docstring() -> None:
    assert Bookstore.place_order.__name__ == "place_order"
    assert "idempotency key" in (Bookstore.place_order.__doc__ or "")

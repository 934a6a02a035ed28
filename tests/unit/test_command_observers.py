"""`command_observers`: every command run reports its name, how it ended and the races it lost.

The metrics of the API hang on this hook; the write model itself knows nothing of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from tests.factories import ctx, new_book
from write_model.application import Bookstore
from write_model.errors import ConcurrencyError, NotFoundError

Heard = list[tuple[str, str, int]]


@pytest.fixture
def app() -> Iterator[Bookstore]:
    bookstore = Bookstore(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield bookstore
    bookstore.close()


@pytest.fixture
def heard(app: Bookstore) -> Heard:
    runs: Heard = []
    app.command_observers.append(lambda *run: runs.append(run))
    return runs


@pytest.fixture(autouse=True)
def no_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("write_model.plumbing.time.sleep", lambda _: None)


def lose_saves(monkeypatch: pytest.MonkeyPatch, app: Bookstore, losses: int) -> None:
    real_save = app.save
    calls = 0

    def save(*objs: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls <= losses:
            raise IntegrityError("simulated lost race")
        return real_save(*objs, **kwargs)

    monkeypatch.setattr(app, "save", save)


def test_a_successful_command_is_reported_ok_with_no_conflicts(
    app: Bookstore, heard: Heard
) -> None:
    new_book(app, stock=3)

    assert heard == [("register_book", "ok", 0)]


def test_a_command_that_lost_two_races_is_reported_ok_with_two_conflicts(
    app: Bookstore, heard: Heard, monkeypatch: pytest.MonkeyPatch
) -> None:
    book_id = new_book(app, stock=3)
    lose_saves(monkeypatch, app, losses=2)

    app.restock_book(ctx(), book_id, 1)

    assert heard[-1] == ("restock_book", "ok", 2)


def test_a_command_that_never_wins_is_reported_as_a_conflict(
    app: Bookstore, heard: Heard, monkeypatch: pytest.MonkeyPatch
) -> None:
    book_id = new_book(app, stock=3)
    lose_saves(monkeypatch, app, losses=app.max_attempts)

    with pytest.raises(ConcurrencyError):
        app.restock_book(ctx(), book_id, 1)

    assert heard[-1] == ("restock_book", "conflict", app.max_attempts)


def test_a_command_the_domain_refuses_is_reported_rejected(app: Bookstore, heard: Heard) -> None:
    with pytest.raises(NotFoundError):
        app.restock_book(ctx(), uuid.uuid4(), 1)

    assert heard == [("restock_book", "rejected", 0)]


def test_a_failing_observer_never_fails_the_command(app: Bookstore, heard: Heard) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("metrics backend gone")

    app.command_observers.insert(0, broken)

    book_id = new_book(app, stock=3)

    assert app.get_book(book_id).stock == 3
    assert heard == [("register_book", "ok", 0)]

"""Writes of password hashes never overwrite a newer one (issue 9 item 2), and the write
model can end a user's sessions on its own (issue 9 item 3)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.factories import ctx, new_customer
from write_model.application import Bookstore
from write_model.credentials import InMemoryCredentialStore


@pytest.fixture
def app() -> Iterator[Bookstore]:
    bookstore = Bookstore(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield bookstore
    bookstore.close()


def test_a_rehash_replaces_only_the_hash_it_verified(app: Bookstore) -> None:
    user_id = new_customer(app)
    app.credentials.set_password_hash(user_id, "$2b$verified-at-login")
    # Meanwhile the password changed: the login's upgrade of the old hash must not land.
    app.credentials.set_password_hash(user_id, "$argon2id$changed")

    upgraded = app.rehash_password(
        user_id, "$argon2id$upgrade-of-old", replacing="$2b$verified-at-login"
    )

    assert upgraded is False
    assert app.password_hash_of(user_id) == "$argon2id$changed"


def test_a_rehash_of_the_current_hash_lands(app: Bookstore) -> None:
    user_id = new_customer(app)
    app.credentials.set_password_hash(user_id, "$2b$old")

    assert app.rehash_password(user_id, "$argon2id$new", replacing="$2b$old") is True
    assert app.password_hash_of(user_id) == "$argon2id$new"


def test_a_failed_password_change_does_not_put_the_old_hash_back_over_a_newer_one(
    app: Bookstore, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id = new_customer(app)
    app.credentials.set_password_hash(user_id, "$argon2id$old")
    real_save = app.save

    def save_losing_to_a_newer_change(*aggregates: Any, **kwargs: Any) -> Any:
        # Another request changed the password (hash and event) while this one saved ...
        monkeypatch.setattr(app, "save", real_save)
        app.change_password(ctx(user_id), user_id, "$argon2id$newer")
        # ... and this one's save then failed.
        raise RuntimeError("the event store went away")

    monkeypatch.setattr(app, "save", save_losing_to_a_newer_change)
    with pytest.raises(RuntimeError):
        app.change_password(ctx(user_id), user_id, "$argon2id$failed")

    assert app.password_hash_of(user_id) == "$argon2id$newer"


def test_a_failed_password_change_still_puts_the_old_hash_back(
    app: Bookstore, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id = new_customer(app)
    app.credentials.set_password_hash(user_id, "$argon2id$old")

    def broken_save(*_: object, **__: object) -> None:
        raise RuntimeError("the event store went away")

    monkeypatch.setattr(app, "save", broken_save)
    with pytest.raises(RuntimeError):
        app.change_password(ctx(user_id), user_id, "$argon2id$failed")

    assert app.password_hash_of(user_id) == "$argon2id$old"


def test_the_in_memory_store_compares_before_it_sets() -> None:
    store = InMemoryCredentialStore()
    user_id = new_customer(Bookstore(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}))
    store.set_password_hash(user_id, "a")
    assert store.replace_password_hash(user_id, expected="b", new="c") is False
    assert store.replace_password_hash(user_id, expected="a", new=None) is True
    assert store.get_password_hash(user_id) is None


def test_ending_sessions_moves_the_session_version_on(app: Bookstore) -> None:
    user_id = new_customer(app)
    before = app.get_user(user_id).session_version

    position = app.end_sessions(ctx(), user_id)

    assert app.get_user(user_id).session_version == before + 1
    assert position == app.recorder.max_notification_id()

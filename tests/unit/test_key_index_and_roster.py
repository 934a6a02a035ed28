"""The aggregates that keep keys unique and at least one admin active."""

from __future__ import annotations

from uuid import uuid4

import pytest

from write_model.errors import DuplicateKeyError, LastAdminError
from write_model.ids import key_id
from write_model.key_index import KeyIndex
from write_model.roster import ROSTER_ID, AdminRoster


def test_a_key_index_id_follows_from_its_kind_and_key() -> None:
    index = KeyIndex(kind="isbn", key="9780306406157", owner_id=uuid4())
    assert index.id == key_id("isbn", "9780306406157")
    assert index.id != key_id("email", "9780306406157")
    assert index.id != KeyIndex(kind="isbn", key="9780306406158", owner_id=uuid4()).id


def test_a_taken_key_cannot_be_claimed_by_another_owner() -> None:
    owner = uuid4()
    index = KeyIndex(kind="email", key="a@example.com", owner_id=owner)
    index.collect_events()

    index.claim(owner)
    with pytest.raises(DuplicateKeyError):
        index.claim(uuid4())
    assert index.owner_id == owner
    assert index.collect_events() == []


def test_a_released_key_can_be_claimed_again() -> None:
    index = KeyIndex(kind="isbn", key="9780306406157", owner_id=uuid4())
    index.collect_events()
    index.release()
    index.release()
    assert index.owner_id is None
    newcomer = uuid4()
    index.claim(newcomer)
    assert index.owner_id == newcomer
    assert [type(e).__name__ for e in index.collect_events()] == ["Released", "Reclaimed"]


def test_the_roster_has_one_well_known_id() -> None:
    assert AdminRoster().id == ROSTER_ID


def test_the_roster_lists_each_admin_once() -> None:
    roster = AdminRoster()
    first, second = uuid4(), uuid4()
    assert roster.add(first) is True
    assert roster.add(first) is False
    assert roster.add(second) is True
    assert roster.admin_ids == [str(first), str(second)]
    assert roster.remove(first, why="admin") is True
    assert roster.remove(first, why="admin") is False
    assert roster.admin_ids == [str(second)]


def test_the_last_admin_cannot_be_removed_from_the_roster() -> None:
    roster = AdminRoster()
    only = uuid4()
    roster.add(only)
    with pytest.raises(LastAdminError, match="no admin"):
        roster.remove(only, why="admin")
    assert roster.admin_ids == [str(only)]

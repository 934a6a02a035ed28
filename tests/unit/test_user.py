"""The User aggregate: who someone is and what they may do, never their password."""

from __future__ import annotations

import pytest

from write_model.errors import ConflictError, InvalidValueError
from write_model.user import FULL_NAME_MAX, User
from write_model.values import Role

BASE_EVENT_FIELDS = {"originator_id", "originator_version", "timestamp"}


def names(user: User) -> list[str]:
    return [type(e).__name__ for e in user.collect_events()]


def test_a_registered_user_is_an_active_customer_with_a_lower_case_email() -> None:
    user = User.register(email="  Ada.Lovelace@Example.COM ", full_name=" Ada Lovelace ")
    assert user.email == "ada.lovelace@example.com"
    assert user.full_name == "Ada Lovelace"
    assert user.role is Role.CUSTOMER
    assert user.is_active is True
    assert names(user) == ["Registered"]


@pytest.mark.parametrize("email", ["", "ada", "ada@", "@example.com", "ada@example", "a b@x.org"])
def test_an_address_that_is_not_an_email_is_refused(email: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        User.register(email=email)
    assert caught.value.field == "email"


def test_a_full_name_longer_than_the_limit_is_refused() -> None:
    User.register(email="a@example.com", full_name="x" * FULL_NAME_MAX)
    with pytest.raises(InvalidValueError):
        User.register(email="a@example.com", full_name="x" * (FULL_NAME_MAX + 1))


def test_name_and_email_changes_are_recorded_only_when_they_change_something() -> None:
    user = User.register(email="ada@example.com", full_name="Ada")
    user.collect_events()

    assert user.change_full_name("Ada King") is True
    assert user.change_full_name(" Ada King ") is False
    assert user.change_email("ADA.KING@example.com") is True
    assert user.change_email("ada.king@example.com") is False

    assert (user.full_name, user.email) == ("Ada King", "ada.king@example.com")
    assert names(user) == ["FullNameChanged", "EmailChanged"]
    with pytest.raises(InvalidValueError):
        user.change_email("not-an-email")


def test_a_role_change_is_recorded_once() -> None:
    user = User.register(email="a@example.com")
    user.collect_events()
    assert user.change_role(Role.STAFF) is True
    assert user.change_role(Role.STAFF) is False
    assert user.role is Role.STAFF
    assert user.change_role(Role.ADMIN) is True
    assert user.role is Role.ADMIN
    assert names(user) == ["RoleChanged", "RoleChanged"]


def test_a_user_can_be_deactivated_and_reactivated() -> None:
    user = User.register(email="a@example.com")
    user.collect_events()
    sessions_before = user.session_version
    assert user.deactivate() is True
    assert user.session_version == sessions_before + 1
    assert user.deactivate() is False
    assert user.is_active is False
    with pytest.raises(ConflictError):
        user.ensure_active()
    assert user.reactivate() is True
    assert user.reactivate() is False
    assert user.is_active is True
    user.ensure_active()
    assert names(user) == ["Deactivated", "Reactivated"]


def test_a_password_change_is_recorded_without_any_secret_and_ends_older_sessions() -> None:
    user = User.register(email="a@example.com")
    user.collect_events()
    before = user.session_version

    user.record_password_change()

    [changed] = user.collect_events()
    assert type(changed).__name__ == "PasswordChanged"
    assert set(vars(changed)) == BASE_EVENT_FIELDS
    assert user.session_version == before + 1


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.includes(Role.STAFF)
    assert Role.STAFF.includes(Role.CUSTOMER)
    assert not Role.CUSTOMER.includes(Role.STAFF)
    assert not Role.STAFF.includes(Role.ADMIN)

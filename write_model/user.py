"""The User aggregate: who someone is and what they may do. Never their password."""

from __future__ import annotations

from eventsourcing.domain import Aggregate, event

from write_model.errors import ConflictError, InvalidValueError
from write_model.values import Role, normalise_email

FULL_NAME_MAX = 200


def _clean_full_name(full_name: str) -> str:
    name = full_name.strip()
    if len(name) > FULL_NAME_MAX:
        raise InvalidValueError("full_name", f"must be at most {FULL_NAME_MAX} characters")
    return name


class User(Aggregate):
    """A registered person. `session_version` ends every session when it moves on."""

    @classmethod
    def register(cls, *, email: str, full_name: str = "") -> User:
        return cls(
            email=normalise_email(email),
            full_name=_clean_full_name(full_name),
            role=Role.CUSTOMER.value,
        )

    @event("Registered")
    def __init__(self, email: str, full_name: str, role: str) -> None:
        self.email = email
        self.full_name = full_name
        # Plain strings, not enums: snapshots are JSON and come back as strings.
        self.role_name = role
        self.is_active = True
        self.session_version = 0

    def change_full_name(self, full_name: str) -> bool:
        name = _clean_full_name(full_name)
        if name == self.full_name:
            return False
        self._full_name_changed(full_name=name)
        return True

    @event("FullNameChanged")
    def _full_name_changed(self, full_name: str) -> None:
        self.full_name = full_name

    def change_email(self, email: str) -> bool:
        address = normalise_email(email)
        if address == self.email:
            return False
        self._email_changed(email=address)
        return True

    @event("EmailChanged")
    def _email_changed(self, email: str) -> None:
        self.email = email

    @property
    def role(self) -> Role:
        return Role(self.role_name)

    def change_role(self, role: Role) -> bool:
        if role == self.role:
            return False
        self._role_changed(role=Role(role).value)
        return True

    @event("RoleChanged")
    def _role_changed(self, role: str) -> None:
        self.role_name = role

    def deactivate(self) -> bool:
        if not self.is_active:
            return False
        self._deactivated()
        return True

    @event("Deactivated")
    def _deactivated(self) -> None:
        # Ends every session: tokens issued before stay dead after a reactivation.
        self.is_active = False
        self.session_version += 1

    def reactivate(self) -> bool:
        if self.is_active:
            return False
        self._reactivated()
        return True

    @event("Reactivated")
    def _reactivated(self) -> None:
        self.is_active = True

    def record_password_change(self) -> None:
        """Note (without the secret) that the password changed, ending older sessions."""
        self._password_changed()

    @event("PasswordChanged")
    def _password_changed(self) -> None:
        self.session_version += 1

    def end_sessions(self) -> None:
        """End every session (a refresh token was used twice: someone else holds one)."""
        self._sessions_ended()

    @event("SessionsEnded")
    def _sessions_ended(self) -> None:
        self.session_version += 1

    def ensure_active(self) -> None:
        if not self.is_active:
            raise ConflictError("User is deactivated")

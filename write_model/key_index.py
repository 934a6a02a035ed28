"""The index aggregate that makes a natural key unique (ISBN, email, idempotency key)."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from write_model.errors import DuplicateKeyError
from write_model.ids import key_id


class KeyIndex(Aggregate):
    """Maps one normalised key to the aggregate that owns it.

    Its id is derived from the key, so two owners racing for one new key both try to
    create the same aggregate and the store lets exactly one win. A released key
    (a removed book, a changed email) can be claimed again, under optimistic concurrency.
    """

    @staticmethod
    def create_id(kind: str, key: str, owner_id: UUID) -> UUID:
        del owner_id
        return key_id(kind, key)

    @event("Claimed")
    def __init__(self, kind: str, key: str, owner_id: UUID) -> None:
        self.kind = kind
        self.key = key
        self.owner_id: UUID | None = owner_id

    def claim(self, owner_id: UUID) -> None:
        """Take a released key; refuse one another owner holds."""
        if self.owner_id == owner_id:
            return
        if self.owner_id is not None:
            raise DuplicateKeyError(f"{self.kind} '{self.key}' is already taken")
        self._reclaimed(owner_id=owner_id)

    @event("Reclaimed")
    def _reclaimed(self, owner_id: UUID) -> None:
        self.owner_id = owner_id

    def release(self) -> None:
        """Free the key so another owner may claim it."""
        if self.owner_id is not None:
            self._released()

    @event("Released")
    def _released(self) -> None:
        self.owner_id = None

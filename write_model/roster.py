"""The roster of active admins: one aggregate, so "never leave no admin" is race-free.

Checking a read table before demoting would let two admins demote each other at once.
Every change to an admin's role or active flag also changes this one aggregate in the same
atomic save, so optimistic concurrency lets only one of two such changes through.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from write_model.errors import LastAdminError
from write_model.ids import key_id

ROSTER_ID = key_id("roster", "active-admins")


class AdminRoster(Aggregate):
    """The ids of the users who are admins and active."""

    @staticmethod
    def create_id() -> UUID:
        return ROSTER_ID

    @event("Started")
    def __init__(self) -> None:
        self.admin_ids: list[str] = []

    def add(self, user_id: UUID) -> bool:
        if str(user_id) in self.admin_ids:
            return False
        self._admin_added(user_id=user_id)
        return True

    @event("AdminAdded")
    def _admin_added(self, user_id: UUID) -> None:
        self.admin_ids.append(str(user_id))

    def remove(self, user_id: UUID, *, why: str) -> bool:
        """Drop an admin; refuse to drop the last one."""
        if str(user_id) not in self.admin_ids:
            return False
        if len(self.admin_ids) == 1:
            raise LastAdminError(f"This would leave no {why}")
        self._admin_removed(user_id=user_id)
        return True

    @event("AdminRemoved")
    def _admin_removed(self, user_id: UUID) -> None:
        self.admin_ids.remove(str(user_id))

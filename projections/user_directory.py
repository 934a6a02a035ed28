"""user_directory: the admin's list of users (never a password hash: none is in the log)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from projections.base import Batch, Handler, Projection
from projections.events import topic_of
from projections.rows import Row
from read_model.tables import user_directory
from write_model.user import User


class UserDirectoryProjection(Projection):
    """Email, name, role and active flag of every user."""

    name = "user_directory"
    table = user_directory

    def handled(self) -> Mapping[str, Handler]:
        return {
            topic_of(User, "Registered"): self.registered,
            topic_of(User, "FullNameChanged"): self.changed("full_name"),
            topic_of(User, "EmailChanged"): self.changed("email"),
            topic_of(User, "RoleChanged"): self.changed("role"),
            topic_of(User, "Deactivated"): self.activity(is_active=False),
            topic_of(User, "Reactivated"): self.activity(is_active=True),
        }

    @staticmethod
    def registered(row: Row | None, event: Any, _: Batch) -> Row | None:
        del row
        return {
            "email": event.email,
            "full_name": event.full_name,
            "role": event.role,
            "is_active": True,
            "created_at": event.timestamp,
        }

    @staticmethod
    def changed(field: str) -> Handler:
        """A handler copying one field of the event onto the row."""

        def handle(row: Row | None, event: Any, _: Batch) -> Row | None:
            if row is None:
                return None
            row[field] = getattr(event, field)
            return row

        return handle

    @staticmethod
    def activity(*, is_active: bool) -> Handler:
        def handle(row: Row | None, event: Any, _: Batch) -> Row | None:
            del event
            if row is None:
                return None
            row["is_active"] = is_active
            return row

        return handle

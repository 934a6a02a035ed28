"""Where password hashes live: beside the event log, never in it.

The log is immutable and read by analysts, so a secret written there could never be
erased. The application talks to this port; the composition root plugs in a SQL table.
"""

from __future__ import annotations

import threading
from typing import Protocol
from uuid import UUID


class CredentialStore(Protocol):
    """Password hashes by user id."""

    def set_password_hash(self, user_id: UUID, password_hash: str) -> None: ...

    def get_password_hash(self, user_id: UUID) -> str | None: ...

    def replace_password_hash(self, user_id: UUID, *, expected: str, new: str | None) -> bool:
        """Compare-and-set: store `new` (None: remove the hash) only if the stored hash is
        exactly `expected`, in one atomic step; whether it did."""
        ...

    def delete(self, user_id: UUID) -> None: ...


class InMemoryCredentialStore:
    """For unit tests and the in-memory event store."""

    def __init__(self) -> None:
        self._hashes: dict[UUID, str] = {}
        self._lock = threading.Lock()

    def set_password_hash(self, user_id: UUID, password_hash: str) -> None:
        with self._lock:
            self._hashes[user_id] = password_hash

    def get_password_hash(self, user_id: UUID) -> str | None:
        return self._hashes.get(user_id)

    def replace_password_hash(self, user_id: UUID, *, expected: str, new: str | None) -> bool:
        with self._lock:
            if self._hashes.get(user_id) != expected:
                return False
            if new is None:
                del self._hashes[user_id]
            else:
                self._hashes[user_id] = new
            return True

    def delete(self, user_id: UUID) -> None:
        with self._lock:
            self._hashes.pop(user_id, None)

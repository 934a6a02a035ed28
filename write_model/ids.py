"""Ids derived from natural keys, so that "create a second one" is a version conflict.

The event store refuses a second aggregate with an existing id; deriving ids from keys with
uuid5 turns that guarantee into uniqueness of ISBNs, emails, carts and idempotency keys.
"""

from __future__ import annotations

from functools import lru_cache
from uuid import NAMESPACE_URL, UUID, uuid5

BOOKSTORE_NAMESPACE = uuid5(NAMESPACE_URL, "https://bookstore.example/ids")


# Pure functions of their arguments, called on every command (a SHA-1 each): remembered.
@lru_cache(maxsize=4096)
def key_id(kind: str, key: str) -> UUID:
    """The id of the index aggregate that owns `key` of `kind` (e.g. "isbn")."""
    return uuid5(BOOKSTORE_NAMESPACE, f"/{kind}/{key}")


@lru_cache(maxsize=4096)
def cart_id_for(user_id: UUID) -> UUID:
    """Each user has exactly one cart, whose id follows from the user's id."""
    return uuid5(BOOKSTORE_NAMESPACE, f"/carts/{user_id}")

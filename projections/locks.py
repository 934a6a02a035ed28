"""One runner at a time per projection, however many workers run.

On PostgreSQL a transaction-scoped advisory lock: released by the commit or the rollback
(or by the server when a killed worker's connection drops), so it can never be left
behind. On SQLite the first write of the transaction takes the database's write lock, which
serialises runners just the same.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, text

_NAMESPACE = "bookstore.projection:"


def advisory_key(name: str, version: int | None = None) -> int:
    """A stable signed 64-bit key for a projection version (the same in every process).

    Keyed by (name, version): a rebuild's version N+1 catches up beside N, each under its
    own lock, and the switch takes both.
    """
    key = name if version is None else f"{name}:v{version}"
    digest = hashlib.blake2b((_NAMESPACE + key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_projection(
    connection: Connection, name: str, version: int, *, idle_timeout_seconds: int
) -> None:
    """Take the projection version's lock for the rest of this transaction (waits for it).

    Also lifts the server's `idle_in_transaction_session_timeout` for this transaction
    alone: a batch whose handlers are slow must not be killed half way.
    """
    if connection.dialect.name != "postgresql":
        return
    # One round trip for both: this runs once per batch, and batches are what lag is made of.
    connection.execute(
        text(
            "SELECT set_config('idle_in_transaction_session_timeout', :value, true),"
            " pg_advisory_xact_lock(:key)"
        ),
        {"value": f"{idle_timeout_seconds}s", "key": advisory_key(name, version)},
    )

"""One runner at a time per projection version, however many workers run; advisory keys.

On PostgreSQL a transaction-scoped advisory lock keyed by (name, version): released by the
commit or the rollback (or by the server when a killed worker's connection drops), so it
can never be left behind, and taking it gives the transaction no id, so a runner waiting
for it holds no projection back (a row lock would). On SQLite the first write of the
transaction takes the database's write lock, which serialises runners just the same.
A rebuild's owner holds a session advisory lock keyed here for as long as it runs
(`projections.rebuild`).
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, text

_NAMESPACE = "bookstore.projection:"


def advisory_key(name: str, version: int | None = None) -> int:
    """A stable signed 64-bit key for a projection version (the same in every process).

    With a version, the key of one version of a projection; without, of any name.
    """
    key = name if version is None else f"{name}:v{version}"
    digest = hashlib.blake2b((_NAMESPACE + key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_version(
    connection: Connection, name: str, version: int, *, idle_timeout_seconds: int
) -> None:
    """Take a projection version's lock for the rest of this transaction (waits for it).

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

"""Events table (PostgreSQL): each row records the transaction that wrote it, `tx_id`.

`tx_id xid8 NOT NULL DEFAULT pg_current_xact_id()` and an index on
`(tx_id, notification_id)`. Writers then need no table lock for projections to stay exactly
once: a projection reads only rows whose `tx_id` is below
`pg_snapshot_xmin(pg_current_snapshot())` (every such transaction has ended; any that ends
later has a larger id), in `(tx_id, notification_id)` order (`projections/event_log.py`).
The default fills the column for every writer, whichever way it inserts (the library's
locked INSERT, its lock-free `es_insert_events_uuid`, a bulk COPY, a raw INSERT), so the
guarantee lives in the database, not in one code path.

The events table is the library's (`CREATE_TABLE=y`, which `bookstore migrate` runs just
before this history), named after the application: `bookstore_events` in the `public`
schema. Existing rows all get this migration's transaction id, which keeps their order:
`(tx_id, notification_id)` then equals notification order, as the table lock made it. The
ALTER rewrites the table under an ACCESS EXCLUSIVE lock: on a large store, run `bookstore
migrate` in a quiet window, and restart servers and workers afterwards (their prepared
`SELECT *` statements see a new column).

SQLite (one writer at a time) needs none of it. A database without the events table (the
write-side history run on its own, before the library made it) is left alone; `bookstore
migrate` always makes the events table first.

Revision ID: ws0002
Revises: ws0001
Create Date: 2026-11-30 14:49:00
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import context, op

revision = "ws0002"
down_revision = "ws0001"
branch_labels = None
depends_on = None

EVENTS_TABLE = "bookstore_events"
INDEX = "bookstore_events_tx_id_notification_id_idx"


def _applies() -> bool:
    """PostgreSQL with the library's events table there (offline: PostgreSQL at all)."""
    if op.get_context().dialect.name != "postgresql":
        return False
    if context.is_offline_mode():
        return True
    return sa.inspect(op.get_bind()).has_table(EVENTS_TABLE)


def upgrade() -> None:
    if not _applies():
        return
    op.execute(
        f"ALTER TABLE {EVENTS_TABLE}"
        " ADD COLUMN IF NOT EXISTS tx_id xid8 NOT NULL DEFAULT pg_current_xact_id()"
    )
    op.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON {EVENTS_TABLE} (tx_id, notification_id)")


def downgrade() -> None:
    if not _applies():
        return
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    op.execute(f"ALTER TABLE {EVENTS_TABLE} DROP COLUMN IF EXISTS tx_id")

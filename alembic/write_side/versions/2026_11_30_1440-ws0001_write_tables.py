"""Write-side tables: credentials, refresh_tokens, password_reset_tokens, mail_outbox,
login_failures, as `adapters/write_tables.py` defines them on 2026-11-30.

Until this history existed, `bookstore migrate` made these tables with
`write_side_metadata.create_all`, which creates a missing table and never alters one that
exists. A database made that way can therefore be in any of these states, none of them
recorded in a version table:

- no write-side table at all (a fresh database);
- `credentials` alone (made before the authentication tables existed);
- all five, but `mail_outbox` without `claimed_until` (made before the outbox lease was
  added, commit 2a487de): mail delivery fails there, as every claim names that column;
- all five as they are today.

So this first revision does not assume an empty database: it creates each table that is
missing (with its primary key and indexes), adds each index that is missing, and adds
`mail_outbox.claimed_until` where it is absent (nullable: no mail is leased yet). On a fresh
database that is a plain CREATE; on an old one it fills the gaps and keeps every row
(password hashes, live sessions, queued mail). Every database leaves this revision with the
same schema, so no `alembic stamp` is ever needed and `bookstore migrate` is all an operator
runs. Later revisions are ordinary ones: every database has passed through this one.

The definitions below are a frozen copy, not imports of the models: a later change to the
models must come with its own revision, never rewrite this one.

Downgrade drops the five tables, and with them every password hash: for development only.

Revision ID: ws0001
Revises:
Create Date: 2026-11-30 14:40:00
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from alembic import context, op

revision = "ws0001"
down_revision = None
branch_labels = None
depends_on = None


def _credentials() -> list[sa.Column[Any]]:
    return [
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def _refresh_tokens() -> list[sa.Column[Any]]:
    return [
        sa.Column("jti_hash", sa.String(64), nullable=False),
        sa.Column("family_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    ]


def _password_reset_tokens() -> list[sa.Column[Any]]:
    return [
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    ]


def _mail_outbox() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
    ]


def _login_failures() -> list[sa.Column[Any]]:
    return [
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
    ]


# name: (columns, primary key columns, indexed columns), in creation order.
TABLES: dict[str, tuple[Callable[[], list[sa.Column[Any]]], list[str], list[str]]] = {
    "credentials": (_credentials, ["user_id"], []),
    "refresh_tokens": (_refresh_tokens, ["jti_hash"], ["family_id", "user_id"]),
    "password_reset_tokens": (_password_reset_tokens, ["token_hash"], ["user_id"]),
    "mail_outbox": (_mail_outbox, ["id"], ["recipient"]),
    "login_failures": (_login_failures, ["key"], []),
}


def _existing() -> dict[str, tuple[set[str], set[str]]]:
    """Each write-side table already there: its column names and index names.

    Offline (`alembic upgrade --sql`) there is no database to look at: the script is the
    one for a fresh database.
    """
    if context.is_offline_mode():
        return {}
    inspector = sa.inspect(op.get_bind())
    return {
        name: (
            {column["name"] for column in inspector.get_columns(name)},
            {str(index["name"]) for index in inspector.get_indexes(name)},
        )
        for name in TABLES
        if inspector.has_table(name)
    }


def upgrade() -> None:
    existing = _existing()
    for name, (columns, primary_key, indexed) in TABLES.items():
        if name not in existing:
            op.create_table(
                name, *columns(), sa.PrimaryKeyConstraint(*primary_key, name=op.f(f"pk_{name}"))
            )
            present_columns: set[str] = {column.name for column in columns()}
            present_indexes: set[str] = set()
        else:
            present_columns, present_indexes = existing[name]
        for column in columns():
            if column.name not in present_columns:
                # Only nullable columns were ever added after a table was first made
                # (`mail_outbox.claimed_until`): existing rows get NULL.
                assert column.nullable, f"{name}.{column.name} cannot be added to old rows"
                op.add_column(name, column)
        for column_name in indexed:
            index = f"ix_{name}_{column_name}"
            if index not in present_indexes:
                op.create_index(op.f(index), name, [column_name])


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)

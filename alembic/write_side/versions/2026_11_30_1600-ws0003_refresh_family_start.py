"""refresh_tokens.family_started_at: when the session (refresh family) began.

A session has an absolute lifetime (`session_max_lifetime_seconds`, 30 days by default),
however often it is refreshed, so every row carries the moment of its family's login,
copied from token to token at each rotation.

Rows already there get their family's earliest `issued_at`: the first token of a family is
the one its login issued, and no row is ever deleted, so that is when the session began.
The column is added nullable, filled, then made NOT NULL (on SQLite by rebuilding the
table, which keeps its rows, primary key and indexes).

Revision ID: ws0003
Revises: ws0002
Create Date: 2026-11-30 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "ws0003"
down_revision = "ws0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "refresh_tokens",
        sa.Column("family_started_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.execute(
        "UPDATE refresh_tokens SET family_started_at = ("
        " SELECT MIN(earlier.issued_at) FROM refresh_tokens AS earlier"
        " WHERE earlier.family_id = refresh_tokens.family_id)"
    )
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.alter_column(
            "family_started_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_column("family_started_at")

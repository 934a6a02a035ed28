"""projection_tracking: the log position pair (log_tx_id, log_event_id) each runner resumes from.

On PostgreSQL writers insert events without a table lock, so projections read the log in
`(tx_id, notification_id)` order below a commit watermark and track that pair; `position`
stays the notification id clients see. Both columns are nullable: a row tracked before
this revision has NULL, and the runner works the pair out from its `position` on its next
batch (every event up to it was written under the table lock, in id order).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 14:48:00
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projection_tracking") as batch:
        batch.add_column(sa.Column("log_tx_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("log_event_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projection_tracking") as batch:
        batch.drop_column("log_event_id")
        batch.drop_column("log_tx_id")

"""Blue/green rebuilds: one active version per projection, and the rebuilds' own table.

`uq_projection_tracking_active` lets the database refuse a second active version of a
projection (a switch flips `is_active` from N to N+1 in one transaction). Rows of older
databases already have one version each. `projection_rebuild` keeps every rebuild's state
and progress; `uq_projection_rebuild_running` allows one unfinished rebuild per projection.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "uq_projection_tracking_active",
        "projection_tracking",
        ["name"],
        unique=True,
        postgresql_where=sa.text("is_active"),
        sqlite_where=sa.text("is_active"),
    )
    op.create_table(
        "projection_rebuild",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requested_by", sa.String(200), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("target_position", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("events_applied", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("error_position", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("name", "version", name=op.f("pk_projection_rebuild")),
    )
    op.create_index(
        "uq_projection_rebuild_running",
        "projection_rebuild",
        ["name"],
        unique=True,
        postgresql_where=sa.text("finished_at IS NULL"),
        sqlite_where=sa.text("finished_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_projection_rebuild_running", table_name="projection_rebuild")
    op.drop_table("projection_rebuild")
    op.drop_index("uq_projection_tracking_active", table_name="projection_tracking")

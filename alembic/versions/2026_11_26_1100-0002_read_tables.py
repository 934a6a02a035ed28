"""Read tables: book_listing, order_history, order_line, user_directory, projection_tracking.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"

    op.create_table(
        "book_listing",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("author", sa.String(300), nullable=False),
        sa.Column("isbn", sa.String(13), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title_lower", sa.String(500), nullable=False),
        sa.Column("author_lower", sa.String(300), nullable=False),
        sa.Column("category_lower", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_book_listing")),
    )
    t = sa.table(
        "book_listing",
        sa.column("id"),
        sa.column("title_lower"),
        sa.column("price_cents"),
        sa.column("created_at"),
    )
    op.create_index("ix_book_listing_title_sort", "book_listing", ["title_lower", "id"])
    op.create_index(
        "ix_book_listing_title_sort_desc", "book_listing", [t.c.title_lower.desc(), "id"]
    )
    op.create_index("ix_book_listing_price_sort", "book_listing", ["price_cents", "id"])
    op.create_index(
        "ix_book_listing_price_sort_desc", "book_listing", [t.c.price_cents.desc(), "id"]
    )
    op.create_index("ix_book_listing_created_sort", "book_listing", ["created_at", "id"])
    op.create_index(
        "ix_book_listing_created_sort_desc", "book_listing", [t.c.created_at.desc(), "id"]
    )
    op.create_index(
        "ix_book_listing_author_lower", "book_listing", ["author_lower", "title_lower"]
    )
    op.create_index(
        "ix_book_listing_category_lower", "book_listing", ["category_lower", "title_lower"]
    )
    op.create_index("ix_book_listing_stock", "book_listing", ["stock"])
    op.create_index("ix_book_listing_isbn", "book_listing", ["isbn"])
    if postgres:
        # Trusted extension since PostgreSQL 13: the database owner may create it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for column in ("title_lower", "author_lower"):
            op.create_index(
                f"ix_book_listing_{column}_trgm",
                "book_listing",
                [column],
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            )

    op.create_table(
        "order_history",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_history")),
    )
    o = sa.table("order_history", sa.column("created_at"))
    op.create_index(
        "ix_order_history_user_newest", "order_history", ["user_id", o.c.created_at.desc(), "id"]
    )
    op.create_index("ix_order_history_newest", "order_history", [o.c.created_at.desc(), "id"])

    op.create_table(
        "order_line",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_cents", sa.BigInteger(), nullable=False),
        sa.Column("line_total_cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["order_history.id"],
            name=op.f("fk_order_line_order_id_order_history"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("order_id", "line_no", name=op.f("pk_order_line")),
    )

    op.create_table(
        "user_directory",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_directory")),
    )
    op.create_index("ix_user_directory_email", "user_directory", ["email", "id"])
    op.create_index("ix_user_directory_role", "user_directory", ["role", "email"])

    op.create_table(
        "projection_tracking",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("error_position", sa.BigInteger(), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name=op.f("pk_projection_tracking")),
    )


def downgrade() -> None:
    op.drop_table("projection_tracking")
    op.drop_table("user_directory")
    op.drop_table("order_line")
    op.drop_table("order_history")
    op.drop_table("book_listing")

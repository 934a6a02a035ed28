"""book_listing keeps only the indexes GET /books plans use (twelve -> six).

EXPLAIN of every filter and sort of the contract on 100,000 rows
(`python -m bench.book_listing_plans`) found: the three `(key DESC, id)` indexes unused once
the ascending ones are scanned backwards with an incremental sort of ties by id; `isbn`
never read; `stock` used only to count, and it rules out HOT updates of stock changes (0 of
1,631 were HOT), so every order rewrote all twelve indexes. The author and category
indexes become single-column (deduplicated, small; the category one is what an unfiltered
count scans), and the two trigram indexes one over both columns. On PostgreSQL new pages
keep 10% free (fillfactor 90), so a stock change stays on its page as a HOT update (pages
written before keep theirs full until a rebuild rewrites them).

On a large live table the new indexes take a while to build, and writes to book_listing
wait meanwhile: run it in a quiet window, or rebuild the projection (which builds them
concurrently beside the serving version) before migrating.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLE = "book_listing"
DROPPED = (
    "ix_book_listing_title_sort_desc",
    "ix_book_listing_price_sort_desc",
    "ix_book_listing_created_sort_desc",
    "ix_book_listing_stock",
    "ix_book_listing_isbn",
)


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    for name in DROPPED:
        op.drop_index(name, table_name=TABLE)
    op.drop_index("ix_book_listing_author_lower", table_name=TABLE)
    op.drop_index("ix_book_listing_category_lower", table_name=TABLE)
    op.create_index("ix_book_listing_author_lower", TABLE, ["author_lower"])
    op.create_index("ix_book_listing_category_lower", TABLE, ["category_lower"])
    if _postgres():
        # New pages keep 10% free: stock changes then stay on their page, as HOT updates.
        op.execute(f"ALTER TABLE {TABLE} SET (fillfactor = 90)")
        op.drop_index("ix_book_listing_title_lower_trgm", table_name=TABLE)
        op.drop_index("ix_book_listing_author_lower_trgm", table_name=TABLE)
        op.create_index(
            "ix_book_listing_search_trgm",
            TABLE,
            ["title_lower", "author_lower"],
            postgresql_using="gin",
            postgresql_ops={"title_lower": "gin_trgm_ops", "author_lower": "gin_trgm_ops"},
        )


def downgrade() -> None:
    t = sa.table(TABLE, sa.column("title_lower"), sa.column("price_cents"), sa.column("created_at"))
    if _postgres():
        op.execute(f"ALTER TABLE {TABLE} RESET (fillfactor)")
        op.drop_index("ix_book_listing_search_trgm", table_name=TABLE)
        for column in ("title_lower", "author_lower"):
            op.create_index(
                f"ix_book_listing_{column}_trgm",
                TABLE,
                [column],
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            )
    op.drop_index("ix_book_listing_category_lower", table_name=TABLE)
    op.drop_index("ix_book_listing_author_lower", table_name=TABLE)
    op.create_index("ix_book_listing_category_lower", TABLE, ["category_lower", "title_lower"])
    op.create_index("ix_book_listing_author_lower", TABLE, ["author_lower", "title_lower"])
    op.create_index("ix_book_listing_isbn", TABLE, ["isbn"])
    op.create_index("ix_book_listing_stock", TABLE, ["stock"])
    op.create_index("ix_book_listing_created_sort_desc", TABLE, [t.c.created_at.desc(), "id"])
    op.create_index("ix_book_listing_price_sort_desc", TABLE, [t.c.price_cents.desc(), "id"])
    op.create_index("ix_book_listing_title_sort_desc", TABLE, [t.c.title_lower.desc(), "id"])

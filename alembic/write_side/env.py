"""Alembic environment of the write side's tables (credentials, tokens, outbox, throttle).

A history of its own, apart from the read tables': these tables live in the event store's
database (`Settings.resolved_event_store_url`), which on the embedded default is the very
file that holds the read tables. So this history keeps its own version table, and it
compares only its own tables: the event store's, the read side's and the other history's
version table are not this metadata's to drop.
"""

from __future__ import annotations

from sqlalchemy import create_engine, pool

from adapters.write_tables import write_side_metadata
from alembic import context

VERSION_TABLE = "alembic_version_write_side"

config = context.config
target_metadata = write_side_metadata


def _url() -> str:
    url = config.attributes.get("sqlalchemy_url")
    if url:
        return str(url)
    from adapters.engines import sqlalchemy_url
    from bookstore.settings import get_settings

    return sqlalchemy_url(get_settings().resolved_event_store_url)


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Compare the write-side tables only: a table in the database but not in the metadata
    belongs to someone else (event store, read side, the other version table). Decided by
    name, so those are never even reflected (the event store has types SQLAlchemy lacks)."""
    del parent_names
    return type_ != "table" or name in target_metadata.tables


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=VERSION_TABLE,
            compare_type=True,
            include_name=include_name,
            # SQLite alters a column by copying its table: autogenerate writes batch ops.
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

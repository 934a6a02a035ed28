"""Alembic environment: the URL comes from the caller (`bookstore migrate`) or Settings."""

from __future__ import annotations

from sqlalchemy import create_engine, pool

from alembic import context
from read_model.tables import include_for_dialect, metadata

config = context.config
target_metadata = metadata


def _url() -> str:
    url = config.attributes.get("sqlalchemy_url")
    if url:
        return str(url)
    from adapters.engines import sqlalchemy_url
    from bookstore.settings import get_settings

    return sqlalchemy_url(get_settings().database_url)


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Reflect only the read tables: the event store's and the write side's tables may share
    this database, and are not this history's (the event store has types SQLAlchemy lacks)."""
    del parent_names
    return type_ != "table" or name in target_metadata.tables


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        compare_type=True,
        include_name=include_name,
        include_object=include_for_dialect(url.split(":", 1)[0].split("+", 1)[0]),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            include_name=include_name,
            include_object=include_for_dialect(connection.dialect.name),
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

"""Dialect-specific INSERT ... ON CONFLICT, the building block of idempotent handlers."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Insert, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert


def upsert(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows, or overwrite every non-key column of the rows already there.

    One executemany: psycopg 3 pipelines it on PostgreSQL, so a batch costs about one
    round trip, not one per row.
    """
    if not rows:
        return
    connection.execute(_upsert_statement(connection.dialect.name, table, tuple(rows[0])), rows)


@lru_cache(maxsize=256)
def _upsert_statement(dialect: str, table: Table, names: tuple[str, ...]) -> Insert:
    """Built once per table and column set: building `excluded` makes a fresh alias and
    proxies every column of the table, which cost about as much as the projection's own
    handlers on every batch."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(table)
    keys = [column.name for column in table.primary_key.columns]
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={name: statement.excluded[name] for name in names if name not in keys},
    )


def insert_missing(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows whose key is not there yet; leave existing ones alone."""
    if not rows:
        return
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    connection.execute(insert(table).on_conflict_do_nothing(), rows)

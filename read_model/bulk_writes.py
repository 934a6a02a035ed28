"""Writing many new rows at once: binary COPY on PostgreSQL, one executemany elsewhere.

A rebuild writes rows that do not exist yet into a table nobody reads; COPY is the fastest
way in (about twice a batched INSERT, measured in `bench/rebuild.py`), and the binary
format spares PostgreSQL parsing text. SQLite has no COPY: one executemany INSERT.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    insert,
)
from sqlalchemy.types import TypeEngine

# SQLAlchemy type -> the PostgreSQL type whose binary form psycopg writes for it.
_BINARY_TYPES: tuple[tuple[type[TypeEngine[Any]], str], ...] = (
    (Uuid, "uuid"),
    (BigInteger, "int8"),
    (SmallInteger, "int2"),
    (Integer, "int4"),
    (Boolean, "bool"),
    (Text, "text"),
    (String, "text"),  # varchar shares text's binary form
)


def _binary_type(column_type: TypeEngine[Any]) -> str | None:
    if isinstance(column_type, DateTime):
        return "timestamptz" if column_type.timezone else "timestamp"
    for kind, name in _BINARY_TYPES:
        if isinstance(column_type, kind):
            return name
    return None


def copy_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows that are all new (a duplicate key fails the whole statement)."""
    if not rows:
        return
    names = [column.name for column in table.columns]
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), [{name: row[name] for name in names} for row in rows])
        return
    types = [_binary_type(column.type) for column in table.columns]
    binary = all(kind is not None for kind in types)
    quoted = ", ".join(f'"{name}"' for name in names)
    statement = f'COPY "{table.name}" ({quoted}) FROM STDIN'
    if binary:
        statement += " (FORMAT BINARY)"
    driver: Any = connection.connection.driver_connection
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        if binary:
            copy.set_types(types)
        write = copy.write_row
        if len(names) == 1:
            for row in rows:
                write((row[names[0]],))
            return
        values = itemgetter(*names)  # a row's values in column order (extra keys ignored)
        for row in rows:
            write(values(row))

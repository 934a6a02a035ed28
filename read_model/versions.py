"""Versions of a projection's tables: the serving one under the stable names, others beside.

Queries, Alembic and the runner following a projection know its tables by their stable
names (`book_listing`, `order_history`, ...), and the serving version of a projection
always has exactly those names: nothing that reads or migrates the read model ever needs to
know which version serves. A blue/green rebuild builds version N+1 beside it under
versioned names (`book_listing_v3`, its indexes `ix_..._v3`, its primary key
`pk_book_listing_v3`, foreign keys pointing at the other tables of version N+1), and the
switch renames in one transaction: the serving tables take the `_vN` suffix, version N+1's
lose theirs. Every name of a version is the stable name plus `_v<N>`, so a switch can
rename whatever the database holds (an index a migration added included) without a list.

PostgreSQL renames are catalogue updates: the switch holds its ACCESS EXCLUSIVE locks for
milliseconds (with a lock timeout, so it never queues readers behind it for long), and
prepared statements re-resolve the names. SQLite cannot rename an index, so there the
switch drops the old tables, renames the new ones and creates their indexes in the same
transaction (the simple way, fine at the embedded default's sizes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    ForeignKeyConstraint,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    inspect,
    text,
)
from sqlalchemy.sql import visitors
from sqlalchemy.sql.ddl import CreateIndex, CreateTable
from sqlalchemy.sql.visitors import ExternallyTraversible

LOGICAL_NAME = "bookstore_logical_name"
VERSION = "bookstore_version"
# A rename (or a drop) waits at most this long for readers to let go of a table; the
# caller retries, so a slow reader delays a switch but never queues every reader behind it.
SWITCH_LOCK_TIMEOUT = "2s"


def version_name(name: str, version: int) -> str:
    """The name a table, index or constraint of version `version` has while not serving."""
    return f"{name}_v{version}"


def logical_name(table: Table) -> str:
    """The stable name of a table, whichever version's copy it is."""
    return str(table.info.get(LOGICAL_NAME, table.name))


def _ordered(tables: Sequence[Table]) -> list[Table]:
    """Parents before the tables referring to them (the order to create in)."""
    names = {table.name for table in tables}
    done: list[Table] = []
    pending = list(tables)
    while pending:
        for table in pending:
            parents = {fk.referred_table.name for fk in table.foreign_key_constraints}
            if parents & names <= {t.name for t in done} | {table.name}:
                done.append(table)
                pending.remove(table)
                break
        else:  # a cycle: keep the declared order
            done.extend(pending)
            break
    return done


class VersionTables:
    """The tables of one version of a projection, built beside the serving ones.

    `tables` maps each stable name to its versioned copy: the same columns, the primary key
    and foreign keys (renamed), and no secondary index; `indexes` the secondary indexes to
    build once loaded. On SQLite the copies keep the stable constraint names (they need
    not be unique there, and are never renamed).
    """

    def __init__(
        self, logical: Sequence[Table], version: int, dialect: str, *, unlogged: bool = False
    ) -> None:
        self.version = version
        self.dialect = dialect
        self.unlogged = unlogged and dialect == "postgresql"
        self.logical = _ordered(logical)
        self.metadata = MetaData()
        self.tables: dict[str, Table] = {}
        self.indexes: dict[str, list[Index]] = {}
        for table in self.logical:
            copy = self._copy(table)
            self.tables[table.name] = copy
            self.indexes[table.name] = [
                self._copy_index(index, table, copy)
                for index in sorted(table.indexes, key=lambda i: str(i.name))
                if applies_to(index, dialect)
            ]

    def _name(self, name: str) -> str:
        return version_name(name, self.version)

    def _constraint_name(self, name: str) -> str:
        return name if self.dialect == "sqlite" else self._name(name)

    def _copy(self, table: Table) -> Table:
        columns = [
            Column(column.name, column.type, nullable=column.nullable, autoincrement=False)
            for column in table.columns
        ]
        constraints: list[Any] = [
            PrimaryKeyConstraint(
                *[column.name for column in table.primary_key.columns],
                name=self._constraint_name(str(table.primary_key.name)),
            )
        ]
        for foreign_key in table.foreign_key_constraints:
            referred = foreign_key.referred_table.name
            constraints.append(
                ForeignKeyConstraint(
                    [column.name for column in foreign_key.columns],
                    [
                        f"{self._name(referred)}.{element.column.name}"
                        for element in foreign_key.elements
                    ],
                    name=self._constraint_name(str(foreign_key.name)),
                    ondelete=foreign_key.ondelete,
                )
            )
        return Table(
            self._name(table.name),
            self.metadata,
            *columns,
            *constraints,
            info={LOGICAL_NAME: table.name, VERSION: self.version},
            prefixes=["UNLOGGED"] if self.unlogged else [],
            **dict(table.dialect_kwargs),
        )

    def _copy_index(self, index: Index, logical: Table, copy: Table) -> Index:
        def rebind(element: ExternallyTraversible, **_: Any) -> ExternallyTraversible | None:
            if isinstance(element, Column) and element.table is logical:
                replaced: ExternallyTraversible = copy.c[element.name]
                return replaced
            return None

        options: dict[str, Any] = {}
        expressions = [
            copy.c[expression]
            if isinstance(expression, str)
            else visitors.replacement_traverse(expression, options, rebind)
            for expression in index.expressions
        ]
        # Not attached to `copy` (no `_table`): created on their own, after the load.
        return Index(
            self._name(str(index.name)),
            *expressions,
            unique=bool(index.unique),
            **dict(index.dialect_kwargs),
        )

    @property
    def all_tables(self) -> list[Table]:
        return [self.tables[table.name] for table in self.logical]

    def create(self, connection: Connection) -> None:
        """Create the tables (primary and foreign keys only), if not there yet."""
        for table in self.all_tables:
            connection.execute(CreateTable(table, if_not_exists=True))

    def drop(self, connection: Connection) -> None:
        """Drop the tables of this version (children first), if there."""
        for table in reversed(self.all_tables):
            connection.execute(text(f'DROP TABLE IF EXISTS "{table.name}"'))

    def index_statements(self, *, concurrently: bool) -> list[CreateIndex]:
        """`CREATE INDEX [CONCURRENTLY] IF NOT EXISTS` of every secondary index."""
        statements = []
        for table in self.logical:
            for index in self.indexes[table.name]:
                if concurrently:
                    index.dialect_options["postgresql"]["concurrently"] = True
                statements.append(CreateIndex(index, if_not_exists=True))
        return statements

    def set_logged(self, connection: Connection) -> None:
        """Make unlogged tables crash-safe (PostgreSQL): the whole table is written to WAL."""
        for table in self.all_tables:
            connection.execute(text(f'ALTER TABLE "{table.name}" SET LOGGED'))


def applies_to(index: Index, dialect: str) -> bool:
    """Whether an index is declared for this dialect (trigram indexes are PostgreSQL's)."""
    condition = getattr(index, "_ddl_if", None)
    wanted = getattr(condition, "dialect", None)
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return wanted == dialect
    return dialect in wanted


def drop_invalid_indexes(connection: Connection, tables: Iterable[Table]) -> list[str]:
    """Drop indexes a killed `CREATE INDEX CONCURRENTLY` left invalid (PostgreSQL)."""
    names = [table.name for table in tables]
    invalid = (
        connection.execute(
            text(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " JOIN pg_class t ON t.oid = i.indrelid"
                " WHERE NOT i.indisvalid AND t.relname = ANY(:names)"
                " AND t.relnamespace = current_schema()::regnamespace"
            ),
            {"names": names},
        )
        .scalars()
        .all()
    )
    for name in invalid:
        connection.execute(text(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"'))
    return list(invalid)


# ---------------------------------------------------------------------------- the switch


def swap_in(connection: Connection, new: VersionTables, old_version: int) -> None:
    """Make version `new` serve under the stable names; the serving tables become `_v<old>`.

    Runs inside the caller's transaction (the switch), which also flips the tracking rows.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"SET LOCAL lock_timeout = '{SWITCH_LOCK_TIMEOUT}'"))
        for table in new.logical:
            _rename_postgres(connection, table.name, version_name(table.name, old_version), "")
        for table in new.logical:
            _rename_postgres(
                connection, version_name(table.name, new.version), table.name, f"_v{new.version}"
            )
        return
    # SQLite: the old tables go now (children first), the new take their names, and their
    # indexes are created under the stable names.
    for table in reversed(new.logical):
        connection.execute(text(f'DROP TABLE IF EXISTS "{table.name}"'))
    for table in new.logical:
        connection.execute(
            text(f'ALTER TABLE "{version_name(table.name, new.version)}" RENAME TO "{table.name}"')
        )
    for table in new.logical:
        for index in table.indexes:
            if applies_to(index, "sqlite"):
                connection.execute(CreateIndex(index, if_not_exists=True))


def _rename_postgres(connection: Connection, table: str, to: str, strip: str) -> None:
    """Rename a table, and its constraints and indexes the same way.

    From the stable names (`strip` empty): every name gains the suffix `to` has. From a
    version's names: every name loses `strip`.
    """
    suffix = to[len(table) :] if not strip else ""

    def renamed(name: str) -> str:
        if strip:
            return name.removesuffix(strip)
        return name + suffix

    constraints = connection.execute(
        text(
            "SELECT conname, conindid <> 0 AS has_index FROM pg_constraint"
            " WHERE conrelid = to_regclass(:table) AND contype IN ('p', 'u', 'f', 'x')"
        ),
        {"table": f'"{table}"'},
    ).all()
    backed = set()
    for name, has_index in constraints:
        connection.execute(
            text(f'ALTER TABLE "{table}" RENAME CONSTRAINT "{name}" TO "{renamed(name)}"')
        )
        if has_index:
            backed.add(renamed(name))
    indexes = connection.execute(
        text(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = to_regclass(:table)"
        ),
        {"table": f'"{table}"'},
    ).scalars()
    for name in list(indexes):
        if name in backed:
            continue  # renamed with its constraint
        connection.execute(text(f'ALTER INDEX "{name}" RENAME TO "{renamed(name)}"'))
    connection.execute(text(f'ALTER TABLE "{table}" RENAME TO "{to}"'))


def drop_tables(connection: Connection, logical: Sequence[Table], version: int) -> None:
    """Drop the `_v<version>` tables of a projection (children first), if there."""
    for table in reversed(_ordered(logical)):
        name = version_name(table.name, version)
        connection.execute(text(f'DROP TABLE IF EXISTS "{name}"'))


def existing_tables(connection: Connection, names: Iterable[str]) -> set[str]:
    """Which of these tables exist."""
    inspector = inspect(connection)
    return {name for name in names if inspector.has_table(name)}

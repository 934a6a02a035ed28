"""The library's PostgreSQL event recorder, bounded, and with the write side's reads made cheap.

Projections read the log below the oldest transaction still running in the cluster, so a
writer's statement that hangs (a lock wait, a stuck insert) would hold every projection
back for as long as it hangs. This recorder gives each connection of the store's pool a
`statement_timeout`; the library's own settings already give them a lock timeout and an
idle-in-transaction timeout. `event_store_env` selects it through the library's
`APPLICATION_RECORDER_TOPIC` setting.

A command is a few small reads and one insert, so the client's work per statement is a
large part of its cost (profiled on `place_order`: rendering the library's composed SQL
again on every call, dict rows, and dumping each event as a composite value in Python).
This recorder therefore:

- keeps its statements as fixed strings and reads rows as tuples;
- inserts a command's events (a handful) as one row of four scalar parameters each,
  dumped by psycopg's C dumpers, rather than as an array of the library's composite type
  rendered field by field in Python (bigger saves: four plain arrays);
- inserts lock-free with its own `INSERT INTO <its table> ... RETURNING`, not through
  the library's `es_insert_events_uuid` function: that function is one per schema and
  names one table, so another eventsourcing application creating its tables in the same
  schema (a benchmark's baseline did) redirects every save into its own table. The
  function's `SET LOCAL lock_timeout` is the connection's lock timeout already, and its
  NOTIFY serves the library's subscriptions, which nothing here uses (projections are
  woken by the commit hook). The locked path still takes the table lock and notifies
  first, as the library does;
- gives the write model's repository (`write_model/repository.py`) two reads that save
  round trips: the newer events of several cached aggregates in one statement, and an
  aggregate's latest snapshot with the events after it in one statement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import (
    AggregateRecorder,
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    PersistenceError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
)
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.rows import DictRow, TupleRow, tuple_row
from psycopg.sql import SQL, Identifier

from adapters.engines import EVENT_STORE_STATEMENT_TIMEOUT_SECONDS

COLUMNS = "originator_id, originator_version, topic, state"
# One event of a save as four scalar parameters; saves of up to this many events are sent
# that way (a command's save is a handful), bigger ones as four arrays.
SCALAR_ROW = "(%s::uuid, %s::bigint, %s::text, %s::bytea)"
MAX_ROWS_INLINE = 32
# A save's events as four arrays, in event order (ORDINALITY keeps that order explicit).
UNNESTED = (
    "unnest(%s::uuid[], %s::bigint[], %s::text[], %s::bytea[])"
    " WITH ORDINALITY AS e(originator_id, originator_version, topic, state, n)"
)
# psycopg's errors as the library's `get_connection` turns them into its own, most specific
# first (each psycopg class here subclasses `psycopg.Error`).
_ERRORS: tuple[tuple[type[psycopg.Error], type[PersistenceError]], ...] = (
    (psycopg.InterfaceError, InterfaceError),
    (psycopg.OperationalError, OperationalError),
    (psycopg.DataError, DataError),
    (psycopg.IntegrityError, IntegrityError),
    (psycopg.InternalError, InternalError),
    (psycopg.ProgrammingError, ProgrammingError),
    (psycopg.NotSupportedError, NotSupportedError),
    (psycopg.DatabaseError, DatabaseError),
)


def _translated(error: psycopg.Error) -> PersistenceError:
    for theirs, ours in _ERRORS:
        if isinstance(error, theirs):
            return ours(str(error))
    return PersistenceError(str(error))


# The library's own retry of a statement on a dropped connection.
_retried = retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)


def _stored(rows: Sequence[TupleRow]) -> list[StoredEvent]:
    return [
        StoredEvent(originator_id=r[0], originator_version=r[1], topic=r[2], state=bytes(r[3]))
        for r in rows
    ]


def _params(stored_events: Sequence[StoredEvent]) -> Sequence[Any]:
    """Four scalars an event (`SCALAR_ROW` each), or the four arrays of `UNNESTED`."""
    if len(stored_events) <= MAX_ROWS_INLINE:
        return [
            value
            for e in stored_events
            for value in (e.originator_id, e.originator_version, e.topic, e.state)
        ]
    return (
        [e.originator_id for e in stored_events],
        [e.originator_version for e in stored_events],
        [e.topic for e in stored_events],
        [e.state for e in stored_events],
    )


class BoundedPostgresRecorder(PostgresApplicationRecorder):
    """`PostgresApplicationRecorder` whose connections end any statement within the timeout,
    with cheaper statements and the batched reads of the write model's repository."""

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        # Before the base class opens the pool (it fetches type information at once): the
        # pool passes these keyword arguments to every connection it makes.
        options = f"-c statement_timeout={EVENT_STORE_STATEMENT_TIMEOUT_SECONDS * 1000}"
        kwargs = datastore.pool.kwargs
        if isinstance(kwargs, dict) and "options" not in kwargs:
            kwargs["options"] = options
        super().__init__(datastore, events_table_name=events_table_name)
        self._table = Identifier(datastore.schema, events_table_name)
        self._select_events: dict[tuple[bool, bool, bool, bool], str] = {}
        self._select_latest: dict[str, str] = {}
        self._select_after = self._render(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state FROM {table} e"
            " JOIN unnest(%s::uuid[], %s::bigint[]) AS a(id, version)"
            " ON e.originator_id = a.id AND e.originator_version > a.version"
            " ORDER BY e.originator_id, e.originator_version"
        )
        self._insert_statements: dict[int, str] = {}

    def _render(self, *template: str, **identifiers: Identifier) -> str:
        """A statement as a fixed string, its identifiers quoted once, here."""
        identifiers.setdefault("table", self._table)
        return SQL("".join(template)).format(**identifiers).as_string()

    def _insert_statement(self, count: int) -> str:
        """The insert of `count` events into this recorder's table, `RETURNING` their ids:
        one row of four scalar parameters each (dumped by psycopg's C dumpers), or four
        arrays past `MAX_ROWS_INLINE` events (one statement text for any number; each
        array value dumped in a Python loop)."""
        inline = count <= MAX_ROWS_INLINE
        key = count if inline else 0
        statement = self._insert_statements.get(key)
        if statement is not None:
            return statement
        rows: tuple[str, ...] = ("VALUES ", ", ".join([SCALAR_ROW] * count))
        if not inline:
            rows = ("SELECT ", COLUMNS, " FROM ", UNNESTED, " ORDER BY n")
        statement = self._render(
            "INSERT INTO {table} (", COLUMNS, ") ", *rows, " RETURNING notification_id"
        )
        self._insert_statements[key] = statement
        return statement

    # ------------------------------------------------------------------ reads

    def _select_statement(self, key: tuple[bool, bool, bool, bool]) -> str:
        statement = self._select_events.get(key)
        if statement is None:
            gt, lte, desc, limit = key
            statement = self._render(
                "SELECT originator_id, originator_version, topic, state FROM {table}"
                " WHERE originator_id = %s",
                " AND originator_version > %s" if gt else "",
                " AND originator_version <= %s" if lte else "",
                " ORDER BY originator_version DESC" if desc else " ORDER BY originator_version",
                " LIMIT %s" if limit else "",
            )
            self._select_events[key] = statement
        return statement

    @_retried
    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        statement = self._select_statement(
            (gt is not None, lte is not None, desc, limit is not None)
        )
        params = [originator_id, *(p for p in (gt, lte, limit) if p is not None)]
        return self._fetch(statement, params)

    def _rows(self, statement: str, params: Sequence[Any] | Mapping[str, Any]) -> list[TupleRow]:
        """One statement's rows, on a connection taken straight from the pool.

        Not through the library's `get_connection`: it opens the pool, registers its
        composite types (which only its own insert uses) and enters the pool's and the
        connection's context managers (a no-op commit on an autocommit connection) on
        every statement, a few percent of a command's CPU. The pool's `putconn` still
        checks the connection and resets it if a statement failed, and errors become the
        library's, as `get_connection` makes them (a refused insert is its `IntegrityError`,
        which commands retry; a dropped connection its `OperationalError`, which `_retried`
        retries).
        """
        pool = self.datastore.pool
        if pool.closed:  # the library opens its pool on first use, in `get_connection`
            with self.datastore.get_connection():
                pass
        try:
            conn = pool.getconn()
            try:
                with conn.cursor(row_factory=tuple_row) as curs:
                    curs.execute(statement, params, prepare=True)
                    return curs.fetchall()
            finally:
                pool.putconn(conn)
        except psycopg.Error as e:
            raise _translated(e) from e

    def _fetch(self, statement: str, params: Sequence[Any]) -> list[StoredEvent]:
        return _stored(self._rows(statement, params))

    @_retried
    def select_events_after(self, versions: Mapping[UUID, int]) -> Sequence[StoredEvent]:
        """The events of each aggregate newer than its version here, in one statement:
        how the repository fast-forwards several cached aggregates at once."""
        if not versions:
            return []
        return self._fetch(self._select_after, [list(versions), list(versions.values())])

    @_retried
    def select_latest(
        self, originator_id: UUID, snapshots: AggregateRecorder
    ) -> tuple[StoredEvent | None, Sequence[StoredEvent]] | None:
        """An aggregate's latest snapshot (or None) and its events after it, in one
        statement (the library reads them in two). None when `snapshots` is not a table
        of this store, so the caller reads them the library's way."""
        if not (
            isinstance(snapshots, PostgresAggregateRecorder)
            and snapshots.datastore is self.datastore
        ):
            return None
        statement = self._select_latest.get(snapshots.events_table_name)
        if statement is None:
            statement = self._render(
                "WITH s AS (SELECT originator_id, originator_version, topic, state"
                " FROM {snapshots} WHERE originator_id = %(id)s"
                " ORDER BY originator_version DESC LIMIT 1)"
                " SELECT 0 AS snapshot, originator_id, originator_version, topic, state FROM s"
                " UNION ALL SELECT 1, originator_id, originator_version, topic, state"
                " FROM {table} WHERE originator_id = %(id)s"
                " AND originator_version > COALESCE((SELECT originator_version FROM s), 0)"
                " ORDER BY 1, 3",
                snapshots=Identifier(self.datastore.schema, snapshots.events_table_name),
            )
            self._select_latest[snapshots.events_table_name] = statement
        rows = self._rows(statement, {"id": originator_id})
        if rows and rows[0][0] == 0:
            return _stored([rows[0][1:]])[0], _stored([r[1:] for r in rows[1:]])
        return None, _stored([r[1:] for r in rows])

    # ------------------------------------------------------------------ writes

    @_retried
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not self.datastore.enable_db_functions or not stored_events:
            locked: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
            return locked
        rows = self._rows(self._insert_statement(len(stored_events)), _params(stored_events))
        return [row[0] for row in rows]

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        """The locked path (the benchmark's "before"): the lock and NOTIFY as the library
        takes them, then the same rows inserted from plain arrays."""
        self._lock_table(curs)
        self._notify_channel(curs)
        statement = self._insert_statement(len(stored_events))
        curs.execute(statement, _params(stored_events), prepare=True)

"""Loading many aggregates in two queries, for batch commands such as the catalogue import.

The library loads an aggregate with one SELECT of its events (after its latest snapshot,
if any). An import of 100,000 books loads up to 200,000 aggregates (each ISBN's index and
the book it names): at about 0.3 ms a round trip, a minute of nothing but waiting. This
reads a batch of ids at once from the library's own tables: their latest snapshots (one
query), then every event after each one's snapshot (one query), decoded by the
application's own mapper and folded as the library's `project_aggregate` folds them, exactly as
`Repository.get` would (tested side by side in tests/integration/test_aggregate_batches.py).

It reads the tables the library creates (`originator_id, originator_version, topic,
state`, the same in eventsourcing 9.5's PostgreSQL and SQLite recorders, pinned in
pyproject.toml) through the recorder's own connection pool, and only reads: the write
still goes through `Application.save` and its optimistic concurrency, so an aggregate read
here that changed before the save makes that save fail and the batch retry. Any other
store (the in-memory one of unit tests) gets the repository, one id at a time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any, cast
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import AggregateRecorder, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder
from psycopg.sql import SQL, Identifier

from write_model.application import Bookstore
from write_model.book_batches import AggregateLoader, one_by_one

# Ids per query: well under SQLite's bound-parameter limit (32,766), two per id.
IDS_PER_QUERY = 1000


class _BatchReader:
    """Snapshots and events of many aggregates from one recorder's tables."""

    def latest_snapshots(self, ids: Sequence[UUID]) -> dict[UUID, StoredEvent]:
        raise NotImplementedError

    def events_after(self, after: Mapping[UUID, int]) -> dict[UUID, list[StoredEvent]]:
        raise NotImplementedError


class _PostgresReader(_BatchReader):
    def __init__(self, events: PostgresAggregateRecorder, snapshots: Any) -> None:
        self.events = events
        self.snapshots = snapshots if isinstance(snapshots, PostgresAggregateRecorder) else None
        schema = Identifier(events.datastore.schema)
        id_type = Identifier(events.datastore.originator_id_type)
        # One primary-key index range per id. A plain join of the unnested ids lets the
        # planner pick a merge or hash join, which reads the whole log for every batch;
        # `OFFSET 0` keeps the LATERAL subquery from being flattened into one.
        self.select_events = SQL(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state "
            "FROM unnest(%s::{id_type}[], %s::bigint[]) AS w(id, after) "
            "CROSS JOIN LATERAL (SELECT * FROM {schema}.{table} s "
            "WHERE s.originator_id = w.id AND s.originator_version > w.after OFFSET 0) e "
            "ORDER BY e.originator_id, e.originator_version"
        ).format(schema=schema, table=Identifier(events.events_table_name), id_type=id_type)
        self.select_snapshots = (
            SQL(
                "SELECT DISTINCT ON (originator_id) originator_id, originator_version, topic, "
                "state FROM {schema}.{table} WHERE originator_id = ANY(%s::{id_type}[]) "
                "ORDER BY originator_id, originator_version DESC"
            ).format(
                schema=schema, table=Identifier(self.snapshots.events_table_name), id_type=id_type
            )
            if self.snapshots is not None
            else None
        )

    def _select(
        self, recorder: PostgresAggregateRecorder, statement: Any, params: Sequence[object]
    ) -> list[StoredEvent]:
        with recorder.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(statement, params)
            return [
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in cursor.fetchall()
            ]

    def latest_snapshots(self, ids: Sequence[UUID]) -> dict[UUID, StoredEvent]:
        if self.snapshots is None or self.select_snapshots is None:
            return {}
        rows = self._select(self.snapshots, self.select_snapshots, [list(ids)])
        return {_uuid(row.originator_id): row for row in rows}

    def events_after(self, after: Mapping[UUID, int]) -> dict[UUID, list[StoredEvent]]:
        rows = self._select(self.events, self.select_events, [list(after), list(after.values())])
        return _grouped(rows)


class _SqliteReader(_BatchReader):
    def __init__(self, events: SQLiteAggregateRecorder, snapshots: Any) -> None:
        self.events = events
        self.snapshots = snapshots if isinstance(snapshots, SQLiteAggregateRecorder) else None

    def _select(
        self, recorder: SQLiteAggregateRecorder, statement: str, params: Sequence[object]
    ) -> list[StoredEvent]:
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, params)
            return [
                StoredEvent(
                    originator_id=recorder.convert_originator_id(row["originator_id"]),
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=row["state"],
                )
                for row in cursor.fetchall()
            ]

    def latest_snapshots(self, ids: Sequence[UUID]) -> dict[UUID, StoredEvent]:
        if self.snapshots is None or not ids:
            return {}
        marks = ",".join("?" * len(ids))
        statement = (
            "SELECT originator_id, originator_version, topic, state "  # noqa: S608 (names are the library's)
            f"FROM {self.snapshots.events_table_name} WHERE originator_id IN ({marks}) "
            "ORDER BY originator_id, originator_version DESC"
        )
        latest: dict[UUID, StoredEvent] = {}
        for row in self._select(self.snapshots, statement, [i.hex for i in ids]):
            latest.setdefault(_uuid(row.originator_id), row)
        return latest

    def events_after(self, after: Mapping[UUID, int]) -> dict[UUID, list[StoredEvent]]:
        if not after:
            return {}
        values = ",".join(["(?, ?)"] * len(after))
        statement = (
            f"WITH w(id, after) AS (VALUES {values}) "  # noqa: S608 (names are the library's)
            "SELECT e.originator_id, e.originator_version, e.topic, e.state "
            f"FROM {self.events.events_table_name} e "
            "JOIN w ON e.originator_id = w.id AND e.originator_version > w.after "
            "ORDER BY e.originator_id, e.originator_version"
        )
        params: list[object] = []
        for aggregate_id, version in after.items():
            params += [aggregate_id.hex, version]
        return _grouped(self._select(self.events, statement, params))


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


def _grouped(rows: list[StoredEvent]) -> dict[UUID, list[StoredEvent]]:
    grouped: dict[UUID, list[StoredEvent]] = defaultdict(list)
    for row in rows:
        grouped[_uuid(row.originator_id)].append(row)
    return grouped


def _reader_for(app: Bookstore) -> _BatchReader | None:
    recorder: AggregateRecorder = app.recorder
    snapshots = app.snapshots.recorder if app.snapshots is not None else None
    if isinstance(recorder, PostgresAggregateRecorder):
        return _PostgresReader(recorder, snapshots)
    if isinstance(recorder, SQLiteAggregateRecorder):
        return _SqliteReader(recorder, snapshots)
    return None


def batch_loader(app: Bookstore) -> AggregateLoader:
    """A function loading the aggregates of many ids at once (ids not found are left out)."""
    reader = _reader_for(app)
    if reader is None:
        return one_by_one(app)
    snapshot_mapper = app.snapshots.mapper if app.snapshots is not None else app.mapper

    def load(ids: Sequence[UUID]) -> dict[UUID, Aggregate]:
        found: dict[UUID, Aggregate] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), IDS_PER_QUERY):
            chunk = unique[start : start + IDS_PER_QUERY]
            snapshots = reader.latest_snapshots(chunk)
            after = {i: snapshots[i].originator_version if i in snapshots else 0 for i in chunk}
            events = reader.events_after(after)
            for aggregate_id in chunk:
                snapshot = snapshots.get(aggregate_id)
                stored = events.get(aggregate_id, [])
                if snapshot is None and not stored:
                    continue
                domain_events = chain(
                    [snapshot_mapper.to_domain_event(snapshot)] if snapshot else [],
                    map(app.mapper.to_domain_event, stored),
                )
                # What the library's `project_aggregate` does, without its per-event
                # runtime Protocol check (a fifth of the time of a load).
                aggregate: Any = None
                for domain_event in domain_events:
                    aggregate = cast(Any, domain_event).mutate(aggregate)
                if isinstance(aggregate, Aggregate):
                    found[aggregate_id] = aggregate
        return found

    return load


def parallel_batches(app: Bookstore) -> int:
    """How many batches of a bulk command to run at once on this store.

    Two on PostgreSQL: its inserts take no table lock here, so one batch waits on the
    database (another core) while the next is built. One elsewhere: SQLite takes one
    writer at a time, and the in-memory store has no waiting to hide.
    """
    return 2 if isinstance(app.recorder, PostgresAggregateRecorder) else 1

"""One aggregate's events with their store positions: what a history shows and `as_of` folds.

The library reads an aggregate's events (`select_events`) without their positions, and
reads positions (`select_notifications`) only for the whole log. A history needs both for
one aggregate, so this asks the event store's own table, by the primary key the library
already has on `(originator_id, originator_version)`: one indexed query, whatever the
log's size. The events are then decoded by the application's mapper, so upcasting,
compression and encryption apply exactly as when the aggregate is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import ApplicationRecorder, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

# The in-memory store (unit tests) is walked a page at a time.
_PAGE = 1000


@dataclass(frozen=True)
class RecordedEvent:
    """A decoded domain event and the global store position it was recorded at."""

    position: int
    event: Any


def recorded_events(app: Application[UUID], originator_id: UUID) -> list[RecordedEvent]:
    """Every event of one aggregate, oldest first, with its position; [] if there is none."""
    return [
        RecordedEvent(position, app.mapper.to_domain_event(stored))
        for position, stored in _positioned(app.recorder, originator_id)
    ]


def _positioned(
    recorder: ApplicationRecorder, originator_id: UUID
) -> Sequence[tuple[int, StoredEvent]]:
    if isinstance(recorder, SQLiteApplicationRecorder):
        return _sqlite(recorder, originator_id)
    if isinstance(recorder, PostgresApplicationRecorder):
        return _postgres(recorder, originator_id)
    return _scanned(recorder, originator_id)


def _sqlite(
    recorder: SQLiteApplicationRecorder, originator_id: UUID
) -> list[tuple[int, StoredEvent]]:
    # The table name is the library's own attribute, never client input. The recorder
    # keys SQLite rows by the id's hex form; the rowid is the notification id.
    statement = (
        "SELECT rowid, originator_version, topic, state "  # noqa: S608
        f"FROM {recorder.events_table_name} WHERE originator_id=? ORDER BY originator_version"
    )
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, [originator_id.hex])
        rows = cursor.fetchall()
    return [
        (
            int(row["rowid"]),
            StoredEvent(originator_id, row["originator_version"], row["topic"], row["state"]),
        )
        for row in rows
    ]


def _postgres(
    recorder: PostgresApplicationRecorder, originator_id: UUID
) -> list[tuple[int, StoredEvent]]:
    statement = SQL(
        "SELECT notification_id, originator_version, topic, state FROM {schema}.{table} "
        "WHERE originator_id = %s ORDER BY originator_version"
    ).format(
        schema=Identifier(recorder.datastore.schema),
        table=Identifier(recorder.events_table_name),
    )
    with recorder.datastore.get_connection() as connection, connection.cursor() as cursor:
        cursor.execute(statement, [originator_id])
        rows = cursor.fetchall()
    return [
        (
            int(row["notification_id"]),
            StoredEvent(
                originator_id, row["originator_version"], row["topic"], bytes(row["state"])
            ),
        )
        for row in rows
    ]


def _scanned(recorder: ApplicationRecorder, originator_id: UUID) -> list[tuple[int, StoredEvent]]:
    """Any other store (the in-memory one of unit tests): walk the whole log."""
    found: list[tuple[int, StoredEvent]] = []
    start: int | None = None
    while True:
        page = recorder.select_notifications(start, _PAGE, inclusive_of_start=False)
        if not page:
            return found
        found.extend(
            (item.id, StoredEvent(originator_id, item.originator_version, item.topic, item.state))
            for item in page
            if str(item.originator_id) == str(originator_id)
        )
        start = page[-1].id

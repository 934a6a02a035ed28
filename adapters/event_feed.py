"""The whole event log as analysts read it: pages by store position, decoded, JSON-safe.

`GET /events` and `bookstore events export` both walk the log here, a page at a time, so
neither ever holds the log whole. Each stored event is decoded by the application's own
mapper (so upcasting, compression and encryption apply exactly as when an aggregate is
loaded: a v1 `Book.Registered` comes out with `language`), then flattened into an
`EventRecord` whose `data` and `metadata` hold only JSON values: money as two-place
strings, ids as strings, times as RFC 3339 in UTC.

Reading order. Positions are notification ids, and pages follow them, as the contract
asks. On SQLite one writer at a time commits ids in order, so a reader following
`next_after` never passes an event. On PostgreSQL writers take no table lock (see
`projections/event_log.py`), so an id can commit a moment after a larger one: a reader
tailing the very head could pass it. Reading history (the export's use, and the feed's
below the head) is unaffected; a consumer that must see every event exactly once as it
happens tracks `(tx_id, notification_id)` below the commit watermark, as the projections
do. The watermark is not applied here: any transaction open anywhere in the cluster holds
it back, and the feed would then lag behind events already committed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import Enum
from functools import cache
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import ApplicationRecorder, Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import get_topic
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from write_model.book import Book
from write_model.cart import Cart
from write_model.key_index import KeyIndex
from write_model.order import Order
from write_model.roster import AdminRoster
from write_model.user import User

# Every aggregate whose events the log can hold.
AGGREGATES: tuple[type[Aggregate], ...] = (Book, User, Cart, Order, KeyIndex, AdminRoster)
# What `data` leaves out: the library's bookkeeping, given in the record's own fields.
BOOKKEEPING = frozenset(
    {"originator_id", "originator_version", "originator_topic", "timestamp", "metadata"}
)
CENT = Decimal("0.01")
# The in-memory store (unit tests) is walked a page at a time.
_SCAN_PAGE = 1000


@dataclass(frozen=True)
class EventRecord:
    """One stored event as the feed and the export show it (the documented schema).

    `data` and `metadata` hold JSON values when made by `decode`, and the values as
    decoded (Decimal, UUID, ...) when made by `decode_raw`, which the export encodes.
    """

    position: int
    aggregate_id: str
    aggregate_type: str
    version: int
    type: str
    timestamp: datetime
    data: dict[str, Any]
    metadata: dict[str, Any]


# ------------------------------------------------------------------------ event types


@cache
def event_types() -> Mapping[str, str]:
    """`"<Aggregate>.<Event>"` -> stored topic, for every event class of every aggregate."""
    found: dict[str, str] = {}
    for aggregate in AGGREGATES:
        classes = [
            value
            for value in vars(aggregate).values()
            if isinstance(value, type) and issubclass(value, Aggregate.Event)
        ]
        created = [cls for cls in classes if issubclass(cls, Aggregate.Created)]
        for cls in classes:
            # The bases the library defines on every aggregate are never stored: `Event`,
            # and `Created` where the aggregate is created by an event of another name.
            base = cls.__name__ == "Event" or (cls.__name__ == "Created" and len(created) > 1)
            if not base:
                found[cls.__qualname__] = get_topic(cls)
    return dict(sorted(found.items()))


def type_of_topic(topic: str) -> str:
    """`write_model.book:Book.Registered` -> `Book.Registered` (the event's qualified name)."""
    return topic.rpartition(":")[2]


@cache
def _names_of(topic: str) -> tuple[str, str]:
    """The event's type and its aggregate's type, worked out once per topic."""
    name = type_of_topic(topic)
    return name, name.partition(".")[0]


def topics_of(types: Sequence[str]) -> list[str]:
    """The stored topics of these type names; KeyError names the first unknown one."""
    known = event_types()
    return [known[name] for name in types]


# ------------------------------------------------------------------------ JSON values


def rfc3339(moment: datetime) -> str:
    """`2026-11-26T08:40:13.123456Z`: UTC, with a `Z` (naive times are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def json_default(value: Any) -> Any:
    """What JSON cannot hold as it is: every decimal of the bookstore's events is money."""
    if isinstance(value, Decimal):
        return str(value.quantize(CENT, rounding=ROUND_HALF_EVEN))
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


_PLAIN = frozenset({str, int, float, bool, type(None)})
# One compact encoding of `data` and `metadata`, for the export's text columns.
JSON_ENCODER = json.JSONEncoder(default=json_default, ensure_ascii=False, separators=(",", ":"))


def jsonable(value: Any) -> Any:
    """A decoded event value as JSON values (money as two-place strings, ids as strings)."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict or isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if kind is list:
        return [jsonable(item) for item in value]
    converted = json_default(value)
    return jsonable(converted) if type(converted) is list else converted


def raw_record(position: int, topic: str, event: Any) -> EventRecord:
    """One decoded event at a store position, its `data` and `metadata` values as decoded
    (not yet JSON values: encode them with `JSON_ENCODER`, or convert with `jsonable`)."""
    state = vars(event)
    name, aggregate_type = _names_of(topic)
    return EventRecord(
        position=position,
        aggregate_id=str(event.originator_id),
        aggregate_type=aggregate_type,
        version=event.originator_version,
        type=name,
        timestamp=event.timestamp,
        data={key: value for key, value in state.items() if key not in BOOKKEEPING},
        metadata=state.get("metadata") or {},
    )


def decode_raw(app: Application[UUID], notification: Notification) -> EventRecord:
    """Decode (and upcast) a stored event through the application's mapper; values raw."""
    event = app.mapper.to_domain_event(notification)
    return raw_record(notification.id, notification.topic, event)


def decode(app: Application[UUID], notification: Notification) -> EventRecord:
    """Decode (and upcast) a stored event through the application's mapper, JSON-safe."""
    record = decode_raw(app, notification)
    return replace(record, data=jsonable(record.data), metadata=jsonable(record.metadata))


# ------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class EventFilter:
    """Which events a page holds: after a position, up to one, of some types, of one id."""

    after: int = 0
    stop: int | None = None
    topics: Sequence[str] = ()
    aggregate_id: UUID | None = None


def head(app: Application[UUID]) -> int:
    """The newest store position (0 when the log is empty)."""
    return app.recorder.max_notification_id() or 0


def read_page(app: Application[UUID], selection: EventFilter, limit: int) -> list[Notification]:
    """Up to `limit` stored events matching `selection`, oldest first, not yet decoded."""
    recorder = app.recorder
    if isinstance(recorder, PostgresApplicationRecorder):
        return _postgres(recorder, selection, limit)
    if isinstance(recorder, SQLiteApplicationRecorder):
        if selection.aggregate_id is None:
            return list(
                recorder.select_notifications(
                    selection.after,
                    limit,
                    stop=selection.stop,
                    topics=selection.topics,
                    inclusive_of_start=False,
                )
            )
        return _sqlite_of_aggregate(recorder, selection, limit)
    return _scanned(recorder, selection, limit)


def stream(
    app: Application[UUID], selection: EventFilter, page_size: int = 5000
) -> Iterator[list[Notification]]:
    """Pages of stored events after `selection.after`, until none is left (or `stop`)."""
    after = selection.after
    while True:
        page = read_page(
            app,
            EventFilter(after, selection.stop, selection.topics, selection.aggregate_id),
            page_size,
        )
        if not page:
            return
        yield page
        after = page[-1].id
        if len(page) < page_size:
            return


def _sqlite_of_aggregate(
    recorder: SQLiteApplicationRecorder, selection: EventFilter, limit: int
) -> list[Notification]:
    assert selection.aggregate_id is not None
    # The table name is the library's own attribute, never client input; the recorder
    # keys SQLite rows by the id's hex form and the rowid is the notification id.
    clauses = ["originator_id=?", "rowid>?"]
    params: list[Any] = [selection.aggregate_id.hex, selection.after]
    if selection.stop is not None:
        clauses.append("rowid<=?")
        params.append(selection.stop)
    if selection.topics:
        clauses.append(f"topic IN ({','.join('?' * len(selection.topics))})")
        params.extend(selection.topics)
    statement = (
        "SELECT rowid, originator_version, topic, state "  # noqa: S608
        f"FROM {recorder.events_table_name} WHERE {' AND '.join(clauses)} "
        "ORDER BY rowid LIMIT ?"
    )
    params.append(limit)
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    return [
        Notification(
            id=int(row["rowid"]),
            originator_id=selection.aggregate_id,
            originator_version=int(row["originator_version"]),
            topic=row["topic"],
            state=row["state"],
        )
        for row in rows
    ]


def _postgres(
    recorder: PostgresApplicationRecorder, selection: EventFilter, limit: int
) -> list[Notification]:
    # No upper bound in the SQL: with `notification_id <= stop` as well, PostgreSQL plans a
    # bitmap scan of the whole remaining range and a sort, per page (measured: a 1M-event
    # export slowed fivefold). The index scan in id order stops at the limit; `stop` is
    # applied to the rows it returns.
    clauses = [SQL("notification_id > %(after)s")]
    params: dict[str, Any] = {"after": selection.after, "limit": limit}
    if selection.topics:
        clauses.append(SQL("topic = ANY(%(topics)s)"))
        params["topics"] = list(selection.topics)
    if selection.aggregate_id is not None:
        clauses.append(SQL("originator_id = %(aggregate)s"))
        params["aggregate"] = selection.aggregate_id
    statement = SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state "
        "FROM {events} WHERE {where} ORDER BY notification_id LIMIT %(limit)s"
    ).format(
        events=Identifier(recorder.datastore.schema, recorder.events_table_name),
        where=SQL(" AND ").join(clauses),
    )
    with (
        recorder.datastore.get_connection() as connection,
        connection.cursor(row_factory=tuple_row) as cursor,
    ):
        # Planned each time (a page is one query per thousands of events): a generic plan for
        # a prepared statement cannot see the range and may scan the whole table per page.
        cursor.execute(statement, params, prepare=False)
        rows = cursor.fetchall()
    # Tuples, not the pool's dict rows: a large page is built in half the time.
    stop = selection.stop
    return [
        Notification(
            id=position,
            originator_id=originator_id,
            originator_version=version,
            topic=topic,
            state=bytes(state),
        )
        for position, originator_id, version, topic, state in rows
        if stop is None or position <= stop
    ]


def _scanned(
    recorder: ApplicationRecorder, selection: EventFilter, limit: int
) -> list[Notification]:
    """Any other store (the in-memory one of unit tests): walk the log and filter."""
    found: list[Notification] = []
    start = selection.after
    while len(found) < limit:
        page = recorder.select_notifications(
            start,
            _SCAN_PAGE,
            stop=selection.stop,
            topics=selection.topics,
            inclusive_of_start=False,
        )
        if not page:
            break
        found.extend(
            item
            for item in page
            if selection.aggregate_id is None
            or str(item.originator_id) == str(selection.aggregate_id)
        )
        start = page[-1].id
    return found[:limit]

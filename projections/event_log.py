"""Reading the event log in an order no writer can slip an event behind.

A projection resumes from a position and must never find, later, an event before it. Two
readers, one per kind of store:

- `WatermarkLog` (PostgreSQL). Writers insert without a table lock, so notification ids
  do not commit in order: a transaction can hold id 4 open while id 5 commits. Every event
  row records the transaction that wrote it (`tx_id`, the column's default
  `pg_current_xact_id()`, whatever path the insert took). The reader takes only rows whose
  `tx_id` is below `pg_snapshot_xmin(pg_current_snapshot())`, the oldest transaction still
  running anywhere in the cluster: every such transaction has ended, and one that ends
  later has a larger id, so the rows below that watermark are final. It reads them in
  `(tx_id, notification_id)` order, and a position in that order never has anything slip
  in behind it. One aggregate's events keep their order: the transaction that writes
  version v+1 starts after version v committed, so its id is larger. The price: any long
  transaction that has written anything, anywhere in the cluster, holds every projection
  back until it ends (`oldest_open_transaction` names it for `status`).
- `SerialLog` (SQLite, the in-memory store). One writer at a time, so ids commit in order
  and the id alone is a safe position: its positions are `(0, id)`, read up to the head.

Do not narrow the watermark to the events table's current writers (through `pg_locks`):
a transaction that got its id from an earlier write elsewhere and inserts its events later
would slip under it and be skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

from eventsourcing.persistence import ApplicationRecorder, Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import errors as pg_errors
from psycopg.sql import SQL, Composed, Identifier

from read_model.tracking import LOG_START, LogPosition


@dataclass(frozen=True)
class LoggedEvent:
    """A stored event and where it stands in the log's read order."""

    log_position: LogPosition
    notification: Notification

    @property
    def id(self) -> int:
        """Its store position (notification id), the number clients see."""
        return self.notification.id


@dataclass(frozen=True)
class LogRead:
    """One read of a projection's events after a position.

    `end` is where the projection stands once it has applied `events` (past the events of
    other topics in between too); `passed` the newest store position it has then passed.
    `more`: the read stopped at its limit with more readable now. `held_back`: committed
    events wait above the watermark, behind a transaction that is still open.
    """

    events: list[LoggedEvent]
    end: LogPosition
    passed: int
    head: int
    more: bool
    held_back: bool


@dataclass(frozen=True)
class Backlog:
    """The events beyond a position: how many, and whether some wait on the watermark."""

    head: int
    events: int
    held_back: bool


@dataclass(frozen=True)
class OpenTransaction:
    """The oldest transaction holding the watermark back, as an operator would look it up."""

    pid: int | None
    database: str | None
    user: str | None
    application: str | None
    state: str | None
    started_at: datetime | None
    query_started_at: datetime | None
    age_seconds: float
    prepared_gid: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, times as ISO 8601 strings, with the one-line description."""
        found = asdict(self)
        for key in ("started_at", "query_started_at"):
            moment = found[key]
            found[key] = moment.isoformat() if moment is not None else None
        found["description"] = self.describe()
        return found

    def describe(self) -> str:
        """One line for `bookstore projections status`."""
        who = (
            f"prepared transaction {self.prepared_gid!r}"
            if self.prepared_gid
            else (f"pid {self.pid}")
        )
        parts = [
            f"{who} (database {self.database or '?'}, user {self.user or '?'}",
            f"open {self.age_seconds:.0f} s",
        ]
        if self.application:
            parts.append(f"application {self.application!r}")
        if self.state:
            parts.append(f"state {self.state}")
        if self.query_started_at is not None:
            parts.append(f"query started {self.query_started_at.isoformat(timespec='seconds')}")
        return ", ".join(parts) + ")"


class EventLog(Protocol):
    """What the runner, the position waiter and status need of the event store."""

    def head(self) -> int:
        """The newest store position (0 when empty)."""
        ...

    def read(self, after: LogPosition, passed: int, topics: Sequence[str], limit: int) -> LogRead:
        """Up to `limit` events of `topics` after `after`, in read order."""
        ...

    def locate(self, event_id: int) -> LogPosition | None:
        """The position a projection must reach to have processed store position `event_id`.

        None when no event at or beyond it has been recorded yet.
        """
        ...

    def backlog(self, after: LogPosition) -> Backlog:
        """How many events lie beyond `after`."""
        ...

    def first_after(self, after: LogPosition) -> Notification | None:
        """The next event beyond `after`, of any topic."""
        ...

    def oldest_open_transaction(self) -> OpenTransaction | None:
        """The transaction the watermark waits on, if the store has one."""
        ...


def event_log_for(recorder: ApplicationRecorder) -> EventLog:
    """The reader that is safe for this store."""
    if isinstance(recorder, PostgresApplicationRecorder):
        return WatermarkLog(recorder)
    return SerialLog(recorder)


# ---------------------------------------------------------------------------- one writer


class SerialLog:
    """Stores with one writer at a time: ids commit in order, positions are `(0, id)`."""

    def __init__(self, recorder: ApplicationRecorder) -> None:
        self.recorder = recorder

    def head(self) -> int:
        return self.recorder.max_notification_id() or 0

    def read(self, after: LogPosition, passed: int, topics: Sequence[str], limit: int) -> LogRead:
        head = self.head()
        start = after.event_id
        if head <= start:
            return LogRead([], after, passed, head, more=False, held_back=False)
        found = self.recorder.select_notifications(
            start, limit, stop=head, topics=topics, inclusive_of_start=False
        )
        # Fewer than asked: every event up to the head seen before the read is processed,
        # ignored ones included (ids commit in order here).
        end = head if len(found) < limit else found[-1].id
        events = [LoggedEvent(LogPosition(0, n.id), n) for n in found]
        return LogRead(
            events,
            LogPosition(0, end),
            max(passed, end),
            head,
            more=end < head,
            held_back=False,
        )

    def locate(self, event_id: int) -> LogPosition | None:
        return LogPosition(0, event_id)

    def backlog(self, after: LogPosition) -> Backlog:
        head = self.head()
        # Ids may have rare gaps (a rolled-back insert): this may overstate by those.
        return Backlog(head, max(0, head - after.event_id), held_back=False)

    def first_after(self, after: LogPosition) -> Notification | None:
        found = self.recorder.select_notifications(
            after.event_id, 1, stop=self.head(), inclusive_of_start=False
        )
        return found[0] if found else None

    def oldest_open_transaction(self) -> OpenTransaction | None:
        return None


# ---------------------------------------------------------------------------- watermark


class MissingWatermarkColumnError(RuntimeError):
    """The events table predates the `tx_id` column: the database needs migrating."""


class WatermarkLog:
    """PostgreSQL with writers that take no table lock: read below the commit watermark.

    Statements run on the event store's own connection pool (autocommit, so a read never
    holds a transaction id of its own).
    """

    def __init__(self, recorder: PostgresApplicationRecorder) -> None:
        self.recorder = recorder
        self.datastore = recorder.datastore
        table = Identifier(self.datastore.schema, recorder.events_table_name)
        self._read = _READ.format(events=table)
        self._locate = _LOCATE.format(events=table)
        self._backlog = _BACKLOG.format(events=table)
        self._first_after = _FIRST_AFTER.format(events=table)
        self._head = SQL("SELECT max(notification_id) AS head FROM {events}").format(events=table)

    def _rows(self, statement: SQL | Composed, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            with self.datastore.get_connection() as connection, connection.cursor() as cursor:
                cursor.execute(statement, params, prepare=True)
                return list(cursor.fetchall())
        except Exception as error:
            if isinstance(error.__cause__, pg_errors.UndefinedColumn) or isinstance(
                error, pg_errors.UndefinedColumn
            ):
                msg = (
                    f"the events table {self.recorder.events_table_name} has no tx_id column: "
                    "run `bookstore migrate` (write-side revision ws0002)"
                )
                raise MissingWatermarkColumnError(msg) from error
            raise

    def head(self) -> int:
        (row,) = self._rows(self._head, {})
        return int(row["head"] or 0)

    def read(self, after: LogPosition, passed: int, topics: Sequence[str], limit: int) -> LogRead:
        rows = self._rows(
            self._read,
            {
                "tx": str(after.tx_id),
                "id": after.event_id,
                "topics": list(topics),
                # One more than asked: whether more is readable now, without another query.
                "over": limit + 1,
                "limit": limit,
                "passed": passed,
            },
        )
        summary = rows[0]
        head = int(summary["head"] or 0)
        events = [_logged(row) for row in rows if row["notification_id"] is not None]
        if len(events) > limit:
            events = events[:limit]
            last = events[-1]
            return LogRead(
                events,
                last.log_position,
                max(passed, *(event.id for event in events)),
                head,
                more=True,
                held_back=False,
            )
        # Everything readable is in hand: the projection will stand just before the
        # watermark's transaction, past every event below it (other topics' too).
        watermark = int(summary["watermark"])
        newest_below = int(summary["passed"] or 0)
        moved = bool(summary["moved"])
        end = max(after, LogPosition(watermark, 0)) if moved else after
        return LogRead(
            events,
            end,
            max(passed, newest_below),
            head,
            more=False,
            held_back=bool(summary["held_back"]),
        )

    def locate(self, event_id: int) -> LogPosition | None:
        (row,) = self._rows(self._locate, {"id": event_id})
        head = int(row["head"] or 0)
        if row["notification_id"] == event_id:
            return LogPosition(int(row["tx_id"]), event_id)
        if event_id > head:
            return None  # not recorded yet
        # A gap (a rolled-back insert burnt the id): the newest event below it will do.
        if row["notification_id"] is None:
            return LOG_START
        return LogPosition(int(row["tx_id"]), int(row["notification_id"]))

    def backlog(self, after: LogPosition) -> Backlog:
        (row,) = self._rows(self._backlog, {"tx": str(after.tx_id), "id": after.event_id})
        return Backlog(int(row["head"] or 0), int(row["events"]), bool(row["held_back"]))

    def first_after(self, after: LogPosition) -> Notification | None:
        rows = self._rows(self._first_after, {"tx": str(after.tx_id), "id": after.event_id})
        return _logged(rows[0]).notification if rows else None

    def oldest_open_transaction(self) -> OpenTransaction | None:
        rows = self._rows(_OLDEST_OPEN, {})
        if not rows:
            return None
        row = rows[0]
        return OpenTransaction(
            pid=row["pid"],
            database=row["datname"],
            user=row["usename"],
            application=row["application_name"] or None,
            state=row["state"],
            started_at=row["xact_start"],
            query_started_at=row["query_start"],
            age_seconds=float(row["age_seconds"] or 0.0),
            prepared_gid=row["gid"],
        )


def _logged(row: dict[str, Any]) -> LoggedEvent:
    return LoggedEvent(
        LogPosition(int(row["tx_id"]), int(row["notification_id"])),
        Notification(
            id=int(row["notification_id"]),
            originator_id=row["originator_id"],
            originator_version=int(row["originator_version"]),
            topic=row["topic"],
            state=bytes(row["state"]),
        ),
    )


# The watermark, the batch (one row more than asked) and, only when the batch is not full,
# what a short read needs: the newest id below the watermark, whether anything at all lies
# between the position and the watermark, and whether committed events wait above it. Each
# of those is computed once (in a one-row CTE, never per batch row), only when its CASE
# branch is taken (so a full batch of a long catch-up never looks at the rest of the log),
# and as an ordered LIMIT 1 that an index answers in a few pages (EXISTS would be planned
# as a scan that reads the whole table whenever nothing matches). One round trip.
_READ = SQL("""
WITH w AS MATERIALIZED (
    SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin
), batch AS MATERIALIZED (
    SELECT e.tx_id, e.notification_id, e.originator_id, e.originator_version, e.topic, e.state
    FROM {events} e
    WHERE (e.tx_id, e.notification_id) > (%(tx)s::xid8, %(id)s)
      AND e.tx_id < (SELECT xmin FROM w)
      AND e.topic = ANY(%(topics)s)
    ORDER BY e.tx_id, e.notification_id
    LIMIT %(over)s
), found AS MATERIALIZED (
    SELECT count(*) <= %(limit)s AS short FROM batch
), summary AS MATERIALIZED (
    SELECT (SELECT xmin FROM w)::text AS watermark,
           (SELECT max(notification_id) FROM {events}) AS head,
           CASE WHEN (SELECT short FROM found) THEN
               (SELECT notification_id FROM {events}
                WHERE notification_id > %(passed)s AND tx_id < (SELECT xmin FROM w)
                ORDER BY notification_id DESC LIMIT 1)
           END AS passed,
           CASE WHEN (SELECT short FROM found) THEN
               (SELECT notification_id FROM {events}
                WHERE (tx_id, notification_id) > (%(tx)s::xid8, %(id)s)
                  AND tx_id < (SELECT xmin FROM w)
                ORDER BY tx_id, notification_id LIMIT 1) IS NOT NULL
           END AS moved,
           CASE WHEN (SELECT short FROM found) THEN
               (SELECT notification_id FROM {events}
                WHERE tx_id >= (SELECT xmin FROM w)
                ORDER BY tx_id, notification_id LIMIT 1) IS NOT NULL
           END AS held_back
)
SELECT s.watermark, s.head, s.passed, s.moved, s.held_back,
       b.tx_id::text AS tx_id, b.notification_id, b.originator_id, b.originator_version,
       b.topic, b.state
FROM summary s LEFT JOIN batch b ON true
ORDER BY b.tx_id, b.notification_id
""")

_LOCATE = SQL("""
SELECT (SELECT max(notification_id) FROM {events}) AS head, e.tx_id::text AS tx_id,
       e.notification_id
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT tx_id, notification_id FROM {events}
    WHERE notification_id <= %(id)s
    ORDER BY notification_id DESC
    LIMIT 1
) e ON true
""")

_BACKLOG = SQL("""
SELECT (SELECT max(notification_id) FROM {events}) AS head,
       (SELECT count(*) FROM {events}
        WHERE (tx_id, notification_id) > (%(tx)s::xid8, %(id)s)) AS events,
       (SELECT notification_id FROM {events}
        WHERE tx_id >= pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY tx_id, notification_id LIMIT 1) IS NOT NULL AS held_back
""")

# Qualified: an unqualified `ORDER BY tx_id` names the output column (tx_id as text), which
# sorts as text ('10' before '9') and sorts the whole table instead of reading the index.
_FIRST_AFTER = SQL("""
SELECT e.tx_id::text AS tx_id, e.notification_id, e.originator_id, e.originator_version,
       e.topic, e.state
FROM {events} e
WHERE (e.tx_id, e.notification_id) > (%(tx)s::xid8, %(id)s)
ORDER BY e.tx_id, e.notification_id
LIMIT 1
""")

# The oldest transaction that holds a transaction id, anywhere in the cluster: a session
# (pg_stat_activity) or a prepared transaction. Read-only transactions hold no id and
# never hold the watermark back.
_OLDEST_OPEN = SQL("""
SELECT * FROM (
    SELECT a.pid, a.datname, a.usename::text AS usename, a.application_name, a.state,
           a.xact_start, a.query_start,
           extract(epoch FROM clock_timestamp() - a.xact_start) AS age_seconds,
           NULL::text AS gid, age(a.backend_xid) AS xid_age
    FROM pg_stat_activity a
    WHERE a.backend_xid IS NOT NULL AND a.pid <> pg_backend_pid()
    UNION ALL
    SELECT NULL, p.database, p.owner::text, NULL, 'prepared', p.prepared, NULL,
           extract(epoch FROM clock_timestamp() - p.prepared), p.gid, age(p.transaction)
    FROM pg_prepared_xacts p
) open
ORDER BY xid_age DESC
LIMIT 1
""")

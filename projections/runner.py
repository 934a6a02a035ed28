"""The runner: catch a projection up with the event store, one transaction per batch.

`catch_up(name, batch_size)` does one batch:

1. reads the events after the tracked log position, in the log's read order, filtered by
   topic (`event_log.py`: on PostgreSQL only events below the commit watermark, in
   `(tx_id, notification_id)` order; on SQLite up to the head, in id order). No lock is
   held while the store is read. When nothing is readable but committed events wait above
   the watermark (an older transaction is still open), it polls, briefly, until they pass;
2. in one read-database transaction, takes the projection's lock (`pg_advisory_xact_lock`
   on PostgreSQL, the write lock on SQLite) and checks that the tracking row still says
   what it read from (else another runner got there first: it reads again);
3. applies the events (set-based, see `rows.py`);
4. advances the tracking row (and NOTIFYs it on PostgreSQL).

A crash anywhere rolls all of it back, so the batch is repeated from the old position:
every event counts exactly once. Positions are global: when a read returns fewer events
than asked, everything readable up to its end has been processed, the events of other
topics included.

The tracking row keeps two things: the log position the runner resumes from, and the
newest store position (notification id) passed, which clients see (`position`).

A handler that fails stops its projection at that event: the events before it are applied,
the position is set just before it and the error is recorded; the next run tries the
same event again. It is never skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from projections.base import HandlerError, Projection
from projections.event_log import EventLog, LogRead, event_log_for
from projections.events import Positioned
from projections.locks import lock_version
from read_model.tracking import (
    FIRST_VERSION,
    LOG_START,
    STATE_FAILED,
    LogPosition,
    Tracking,
    advance,
    advance_from,
    ensure_tracking,
    get_tracking,
    lock_tracking,
    record_failure,
)
from read_model.versions import VersionTables

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
POSITIONS_CHANNEL = "bookstore_projection_positions"
ERROR_MAX_CHARS = 2000
# How often a batch re-reads the store when another runner moved the position first.
MAX_RACES = 3
# How long a batch polls for committed events held above the watermark by an older open
# transaction (a writer mid-insert, another batch, anything in the cluster that wrote).
HELD_BACK_WAIT_SECONDS = 10.0
FIRST_HELD_BACK_PAUSE_SECONDS = 0.001
MAX_HELD_BACK_PAUSE_SECONDS = 0.05

PositionListener = Callable[[str, LogPosition], None]
# What a tracking row said: its position and log position (None in a row tracked before
# the pair was). Compared under the lock to see whether another runner moved first.
Tracked = tuple[int, LogPosition | None]


def notify_payload(
    name: str, log_position: LogPosition, position: int, version: int = FIRST_VERSION
) -> str:
    """`name:version:tx_id:event_id:position`, what the runner NOTIFYs after each batch
    of the serving version (a rebuild's version N+1 never does: only the serving version
    releases readers waiting for a position)."""
    return f"{name}:{version}:{log_position.tx_id}:{log_position.event_id}:{position}"


def parse_payload(payload: str) -> tuple[str, LogPosition, int] | None:
    """The projection, log position and position of a NOTIFY payload (None if malformed).

    Reads the payload of older processes too (`name:tx_id:event_id:position`).
    """
    parts = payload.split(":")
    if len(parts) == 4:
        parts.insert(1, str(FIRST_VERSION))
    if len(parts) != 5 or not all(part.isdigit() for part in parts[1:]):
        return None
    name, _version, tx_id, event_id, position = parts
    return name, LogPosition(int(tx_id), int(event_id)), int(position)


@dataclass(frozen=True)
class BatchResult:
    """What a catch-up did: where it started and ended, and the error that stopped it.

    `start` and `position` are store positions (notification ids) as clients see them;
    `log_position` is where the projection now stands in the log's read order. `more`:
    more events were readable when it stopped. `held_back`: committed events wait above the
    watermark, behind a transaction still open. `version` is the version of the
    projection's tables the batch wrote, `serving` whether that version serves reads.
    """

    name: str
    start: int
    position: int
    head: int
    applied: int
    error: str | None = None
    error_position: int | None = None
    log_position: LogPosition = LOG_START
    start_log_position: LogPosition = LOG_START
    more: bool = False
    held_back: bool = False
    version: int = FIRST_VERSION
    serving: bool = True

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def caught_up(self) -> bool:
        return not self.failed and not self.more and not self.held_back


@dataclass(frozen=True)
class _Start:
    """Where a batch starts: the tracking row as read, and the log position it means;
    which version of the projection's tables, and whether it serves reads."""

    tracked: Tracked
    log_position: LogPosition
    version: int = FIRST_VERSION
    active: bool = True

    @property
    def position(self) -> int:
        return self.tracked[0]


class UnknownVersionError(KeyError):
    """No such version of the projection is tracked (never started, or dropped)."""


class _EventFailedError(Exception):
    """The event at `failed` could not be applied; `before` are the batch's earlier events."""

    def __init__(
        self,
        start: _Start,
        failed: LogPosition,
        cause: BaseException,
        before: Sequence[Positioned],
    ) -> None:
        super().__init__(f"event at position {failed.event_id}: {cause!r}")
        self.start = start
        self.failed = failed
        self.cause = cause
        self.before = before


class _BatchWriteError(Exception):
    """Writing a batch of several events failed in the database; which event is unknown."""

    def __init__(self, start: _Start, end: LogPosition, count: int, cause: BaseException) -> None:
        super().__init__(repr(cause))
        self.start = start
        self.end = end
        self.count = count


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:ERROR_MAX_CHARS]


def _is_data_error(error: DBAPIError) -> bool:
    """A statement the database refused (a constraint, a value), not a lost connection."""
    return not error.connection_invalidated and not isinstance(
        error, (OperationalError, InterfaceError)
    )


def _log_position_of(item: Positioned) -> LogPosition:
    return LogPosition(item.tx_id, item.position)


class Runner:
    """Catches projections up with an application's event store, into a read database."""

    def __init__(
        self,
        app: Application[Any],
        engine: Engine,
        projections: Iterable[Projection],
        *,
        idle_timeout_seconds: int = 600,
        event_log: EventLog | None = None,
        held_back_wait_seconds: float = HELD_BACK_WAIT_SECONDS,
    ) -> None:
        self.app = app
        self.engine = engine
        self.projections = {projection.name: projection for projection in projections}
        self.idle_timeout_seconds = idle_timeout_seconds
        self.log: EventLog = event_log or event_log_for(app.recorder)
        self.held_back_wait_seconds = held_back_wait_seconds
        # Told of every batch of a serving version (never of a rebuild's version N+1).
        self.listeners: list[PositionListener] = []
        self._bound: dict[tuple[str, int], Projection] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.projections)

    def projection(self, name: str) -> Projection:
        try:
            return self.projections[name]
        except KeyError:
            msg = f"unknown projection {name!r} (known: {', '.join(self.projections)})"
            raise KeyError(msg) from None

    def head(self) -> int:
        """The newest position in the event store (0 when it is empty)."""
        return self.log.head()

    # ------------------------------------------------------------------ public

    def catch_up(
        self,
        name: str,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        version: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> BatchResult:
        """Apply at most `batch_size` of the projection's events, in one transaction.

        `version` None follows the serving version (whichever it is when the batch
        starts); a number catches that version up (a rebuild's N+1, into its own tables).
        `should_stop` cuts short the wait for events held above the watermark.
        """
        projection = self.projection(name)
        if batch_size < 1:
            msg = "batch_size must be at least 1"
            raise ValueError(msg)
        try:
            result = self._batch(projection, batch_size, should_stop, version)
        except _EventFailedError as failure:
            result = self._stop_at(projection, failure)
        except _BatchWriteError as failure:
            result = self._find_failing_event(projection, failure, version)
        moved = result.log_position != result.start_log_position or result.failed
        if moved and result.serving:
            for listener in self.listeners:
                listener(name, result.log_position)
        return result

    def catch_up_fully(
        self,
        name: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_seconds: float | None = None,
        should_stop: Callable[[], bool] | None = None,
        version: int | None = None,
    ) -> BatchResult:
        """Run batches until caught up, stopped by a failure, or out of time.

        Events held above the watermark are waited for (each batch polls up to
        `held_back_wait_seconds`); if a batch's wait runs out with nothing moved, it returns
        with `held_back` set rather than spin on a long transaction.
        """
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        first: BatchResult | None = None
        applied = 0
        while True:
            result = self.catch_up(name, batch_size, version=version, should_stop=should_stop)
            first = first or result
            applied += result.applied
            out_of_time = deadline is not None and time.monotonic() >= deadline
            stopping = should_stop is not None and should_stop()
            stalled = result.log_position == result.start_log_position
            done = not result.more and (not result.held_back or stalled)
            if result.failed or out_of_time or stopping or done:
                return BatchResult(
                    name=name,
                    start=first.start,
                    position=result.position,
                    head=result.head,
                    applied=applied,
                    error=result.error,
                    error_position=result.error_position,
                    log_position=result.log_position,
                    start_log_position=first.start_log_position,
                    more=result.more,
                    held_back=result.held_back,
                    version=result.version,
                    serving=result.serving,
                )

    def catch_up_many(
        self,
        names: Sequence[str] | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_seconds: float | None = None,
    ) -> dict[str, BatchResult]:
        """Catch several projections up at once, one thread each.

        Projections are independent (own lock, own position), so running them side by side
        makes each one's lag its own work rather than the sum of all of theirs. The first
        exception (a database outage, say) is raised once all have finished.
        """
        chosen = list(names or self.names)
        with ThreadPoolExecutor(max_workers=len(chosen), thread_name_prefix="catch-up") as pool:
            futures = {
                name: pool.submit(
                    self.catch_up_fully, name, batch_size=batch_size, max_seconds=max_seconds
                )
                for name in chosen
            }
        return {name: future.result() for name, future in futures.items()}

    # ------------------------------------------------------------------ positions

    def _start(
        self, tracked: Tracked, version: int = FIRST_VERSION, *, active: bool = True
    ) -> _Start:
        """The log position a tracking row means.

        A row tracked before the pair existed has only its position P: every event up to P
        was written under the table lock, in id order, so the log position of event P (or
        of the newest event below it) covers exactly those events.
        """
        position, log_position = tracked
        if log_position is None:
            log_position = self.log.locate(position) or LogPosition(0, position)
        return _Start(tracked, log_position, version, active)

    def _start_of(self, found: Tracking | None, version: int | None) -> _Start:
        if found is None:
            if version is not None and version != FIRST_VERSION:
                raise UnknownVersionError(version)
            # Not tracked yet: the first version, serving, from the start of the log.
            return self._start(self._tracked_of(None))
        return self._start(self._tracked_of(found), found.version, active=found.is_active)

    @staticmethod
    def _tracked_of(found: Tracking | None) -> Tracked:
        if found is None:
            return 0, LOG_START  # what `ensure_tracking` will write
        return found.position, found.log_position

    def _tracked(self, name: str, version: int | None = None) -> _Start:
        """The committed position of a version (None: the serving one), read unlocked."""
        with self.engine.connect() as connection:
            found = get_tracking(connection, name, version)
        return self._start_of(found, version)

    def _lock(self, connection: Connection, name: str, version: int) -> Tracking | None:
        """Lock a version of the projection and read its tracking row, in one statement
        on PostgreSQL (`read_model.tracking.lock_tracking`).

        The first version is tracked on its first batch; a later one only ever by the
        rebuild that starts it (None when it is gone: cancelled, or switched and dropped).
        """
        timeout = self.idle_timeout_seconds
        found = lock_tracking(connection, name, version, idle_timeout_seconds=timeout)
        if found is None and version == FIRST_VERSION:
            ensure_tracking(connection, name)
            found = lock_tracking(connection, name, version, idle_timeout_seconds=timeout)
        return found

    def _pre_read(self, connection: Connection, name: str, version: int | None) -> _Start:
        """Where a batch starts, read on the batch's own connection outside any
        transaction (autocommit on PostgreSQL): the store is read next, and may be polled
        for a while, which must not leave a transaction idle."""
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            connection.execution_options(isolation_level="AUTOCOMMIT")
        try:
            found = get_tracking(connection, name, version)
            connection.commit()
        finally:
            if postgres:
                connection.execution_options(isolation_level=self._isolation_level)
        return self._start_of(found, version)

    @property
    def _isolation_level(self) -> str:
        return str(self.engine.dialect.default_isolation_level or "READ COMMITTED")

    def _bind(self, projection: Projection, start: _Start) -> Projection:
        """The projection writing to the tables of the version a batch is for."""
        if start.active:
            return projection
        key = (projection.name, start.version)
        if key not in self._bound:
            built = VersionTables(projection.tables, start.version, self.engine.dialect.name)
            self._bound[key] = projection.bound(built.tables)
        return self._bound[key]

    def _moved(self, start: _Start, found: Tracking | None) -> bool:
        """Whether the row under the lock differs from the one the batch started from."""
        if found is None:
            return True
        return self._tracked_of(found) != start.tracked or found.is_active != start.active

    def _after_race(self, name: str, found: Tracking | None, version: int | None) -> _Start:
        """Where to read from once another runner (or a switch) moved first."""
        if found is not None and (version is not None or found.is_active):
            return self._start(self._tracked_of(found), found.version, active=found.is_active)
        return self._tracked(name, version)  # switched: follow the new serving version

    # ------------------------------------------------------------------ batches

    def _read(
        self,
        projection: Projection,
        start: _Start,
        limit: int,
        should_stop: Callable[[], bool] | None = None,
    ) -> LogRead:
        """Read after `start`; if only held-back events are ahead, poll until they pass."""
        deadline = time.monotonic() + self.held_back_wait_seconds
        pause = FIRST_HELD_BACK_PAUSE_SECONDS
        while True:
            read = self.log.read(start.log_position, start.position, projection.topics, limit)
            if read.events or read.end != start.log_position or not read.held_back:
                return read
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (should_stop is not None and should_stop()):
                return read
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, MAX_HELD_BACK_PAUSE_SECONDS)

    def _decode(self, start: _Start, read: LogRead) -> list[Positioned]:
        decoded: list[Positioned] = []
        for logged in read.events:
            notification = logged.notification
            try:
                event = self.app.mapper.to_domain_event(notification)
            except Exception as error:
                raise _EventFailedError(start, logged.log_position, error, decoded) from error
            decoded.append(
                Positioned(notification.id, notification.topic, event, logged.log_position.tx_id)
            )
        return decoded

    def _batch(
        self,
        projection: Projection,
        limit: int,
        should_stop: Callable[[], bool] | None = None,
        version: int | None = None,
    ) -> BatchResult:
        """Read the events after the tracked position, then apply them under the lock if
        the tracking row still says the same.

        The event store is read *before* the read-database transaction begins, never while
        holding its lock: in embedded mode both are one SQLite file, and the store's
        writers hold its connection pool's writer slot while they wait for the file's
        write lock, so a runner asking that pool for a connection while holding the file's
        write lock deadlocks with them (until timeouts fail commands and batches alike).
        Taking the lock afterwards and checking the tracking row keeps every event counted
        exactly once, however many runners race.
        """
        with self.engine.connect() as connection:
            return self._batch_on(connection, projection, limit, should_stop, version)

    def _batch_on(
        self,
        connection: Connection,
        projection: Projection,
        limit: int,
        should_stop: Callable[[], bool] | None,
        version: int | None,
    ) -> BatchResult:
        """`_batch` on one connection: read the position, read the store, then lock,
        apply, advance and NOTIFY in one transaction.

        On PostgreSQL the lock is an advisory one (no transaction id while waiting for it)
        and the advance is a compare-and-set with the NOTIFY in the same statement: it
        writes only if the tracking row still says what the batch started from, else the
        batch is rolled back and read again. So the transaction holds an id (and with it
        every projection's watermark) only from its first row written to its commit.
        """
        name = projection.name
        postgres = connection.dialect.name == "postgresql"
        start = self._pre_read(connection, name, version)
        read: LogRead | None = None
        for _ in range(MAX_RACES):
            read = self._read(projection, start, limit, should_stop)
            untracked_pair = start.tracked[1] is None  # convert it, even with nothing new
            if not read.events and read.end == start.log_position and not untracked_pair:
                return self._unchanged(name, start, read)
            events = self._decode(start, read)
            found: Tracking | None = None
            with connection.begin() as transaction:
                if postgres:
                    won = self._apply_and_advance(connection, projection, events, start, read)
                    if not won:
                        transaction.rollback()
                else:
                    found = self._lock(connection, name, start.version)
                    won = not self._moved(start, found)
                    if won:
                        target = self._bind(projection, start)
                        self._apply(target, connection, events, start, read.end)
                        advance(connection, name, start.version, read.passed, read.end)
            if won:
                return BatchResult(
                    name,
                    start.position,
                    read.passed,
                    read.head,
                    len(events),
                    log_position=read.end,
                    start_log_position=start.log_position,
                    more=read.more,
                    held_back=read.held_back,
                    version=start.version,
                    serving=start.active,
                )
            # Another runner applied a batch meanwhile, or the serving version changed:
            # read again from where it stopped (the store is read only now, with the
            # read database's lock released).
            start = self._after_race(name, found, version)
        assert read is not None
        return self._unchanged(name, start, read)

    def _apply_and_advance(
        self,
        connection: Connection,
        projection: Projection,
        events: Sequence[Positioned],
        start: _Start,
        read: LogRead,
    ) -> bool:
        """PostgreSQL: lock, apply, and advance if nobody moved first (False: roll back)."""
        name = projection.name
        lock_version(
            connection, name, start.version, idle_timeout_seconds=self.idle_timeout_seconds
        )
        if start.position == 0 and start.version == FIRST_VERSION and start.active:
            ensure_tracking(connection, name)  # the first batch ever
        self._apply(self._bind(projection, start), connection, events, start, read.end)
        notify = None
        if start.active:
            notify = (POSITIONS_CHANNEL, notify_payload(name, read.end, read.passed, start.version))
        return advance_from(
            connection,
            name,
            start.version,
            expected=start.tracked,
            active=start.active,
            position=read.passed,
            log_position=read.end,
            notify=notify,
        )

    @staticmethod
    def _unchanged(name: str, start: _Start, read: LogRead) -> BatchResult:
        return BatchResult(
            name,
            start.position,
            start.position,
            read.head,
            0,
            log_position=start.log_position,
            start_log_position=start.log_position,
            held_back=read.held_back,
            version=start.version,
            serving=start.active,
        )

    @staticmethod
    def _apply(
        projection: Projection,
        connection: Connection,
        events: Sequence[Positioned],
        start: _Start,
        end: LogPosition,
    ) -> None:
        try:
            projection.apply(connection, events)
        except HandlerError as error:
            failed = _log_position_of(events[error.index])
            raise _EventFailedError(start, failed, error.cause, events[: error.index]) from error
        except DBAPIError as error:
            if not _is_data_error(error):
                raise
            if len(events) == 1:
                raise _EventFailedError(start, _log_position_of(events[0]), error, []) from error
            raise _BatchWriteError(start, end, len(events), error) from error

    def _stop_at(self, projection: Projection, failure: _EventFailedError) -> BatchResult:
        """Apply the events before the failed one, stop just before it, record the error."""
        name = projection.name
        error = _describe(failure.cause)
        failed_id = failure.failed.event_id
        # Just before the failed event in read order: everything before it is processed.
        stop_at = LogPosition(failure.failed.tx_id, failed_id - 1)
        stop = max(failure.start.position, failed_id - 1)
        previous: Tracking | None = None
        start = failure.start
        version = start.version
        try:
            with self.engine.begin() as connection:
                found = self._lock(connection, name, version)
                moved = self._moved(start, found)
                if not moved:
                    previous = found
                    self._bind(projection, start).apply(connection, failure.before)
                    record_failure(
                        connection,
                        name,
                        version,
                        position=stop,
                        log_position=stop_at,
                        error_position=failed_id,
                        error=error,
                    )
                    if start.active:
                        self._notify(connection, name, version, stop_at, stop)
        except (HandlerError, DBAPIError) as again:
            if isinstance(again, DBAPIError) and not _is_data_error(again):
                raise
            # The earlier events fail once written together: find the culprit one by one.
            return self._find_failing_event(
                projection,
                _BatchWriteError(failure.start, failure.failed, len(failure.before) + 1, again),
                version,
            )
        if moved:
            # Another runner moved on meanwhile: its outcome stands. (The store is read
            # only now, with the read database's lock released.)
            now = self._after_race(name, found, version)
            return BatchResult(
                name,
                now.position,
                now.position,
                self.head(),
                0,
                log_position=now.log_position,
                start_log_position=now.log_position,
                version=now.version,
                serving=now.active,
            )
        repeated = (
            previous is not None
            and previous.state == STATE_FAILED
            and previous.error_position == failed_id
            and previous.last_error == error
        )
        if repeated:
            # Retried every run until fixed: say it once with the traceback, then briefly.
            log.warning("projection %s still stopped at event %s", name, failed_id)
        else:
            log.error(
                "projection %s stopped at event %s: %s",
                name,
                failed_id,
                error,
                exc_info=failure.cause,
            )
        return BatchResult(
            name,
            failure.start.position,
            stop,
            self.head(),
            len(failure.before),
            error=error,
            error_position=failed_id,
            log_position=stop_at,
            start_log_position=failure.start.log_position,
            version=version,
            serving=start.active,
        )

    def _find_failing_event(
        self, projection: Projection, failure: _BatchWriteError, version: int | None = None
    ) -> BatchResult:
        """Repeat the failed range one event per transaction, up to the one that fails."""
        log.warning(
            "projection %s: a batch of %s events failed to write (%s); retrying one by one",
            projection.name,
            failure.count,
            failure,
        )
        start = failure.start
        result = BatchResult(
            projection.name,
            start.position,
            start.position,
            self.head(),
            0,
            log_position=start.log_position,
            start_log_position=start.log_position,
            version=start.version,
            serving=start.active,
        )
        for _ in range(failure.count):
            try:
                result = self._batch(projection, 1, version=version)
            except _EventFailedError as single:
                return self._stop_at(projection, single)
            if result.log_position >= failure.end:
                break
        return result

    def _notify(
        self,
        connection: Connection,
        name: str,
        version: int,
        log_position: LogPosition,
        position: int,
    ) -> None:
        """Tell waiting readers the serving version's new position (PostgreSQL delivers it
        at commit)."""
        notify_position(connection, name, version, log_position, position)


def notify_position(
    connection: Connection, name: str, version: int, log_position: LogPosition, position: int
) -> None:
    """NOTIFY the position of a projection's serving version, in the caller's transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {
                "channel": POSITIONS_CHANNEL,
                "payload": notify_payload(name, log_position, position, version),
            },
        )

"""The runner: catch a projection up with the event store, one transaction per batch.

`catch_up(name, batch_size)` does one batch:

1. reads the events after the tracked position, in store order, filtered by topic, up to
   the head observed before the read (no lock is held while the store is read);
2. in one read-database transaction, takes the projection's lock (`pg_advisory_xact_lock`
   on PostgreSQL, the write lock on SQLite) and checks that the tracked position is still
   the one it read from (else another runner got there first: it reads again);
3. applies the events (set-based, see `rows.py`);
4. advances the tracking position (and NOTIFYs it on PostgreSQL).

A crash anywhere rolls all of it back, so the batch is repeated from the old position:
every event counts exactly once. Positions are global: when a topic-filtered read returns
fewer events than asked, every event up to the head seen before the read has been
processed (this store commits ids in order, and ids may have gaps, so reads are always
`> position`).

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
from eventsourcing.persistence import Notification
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from projections.base import HandlerError, Projection
from projections.events import Positioned
from projections.locks import lock_projection
from read_model.tracking import (
    STATE_FAILED,
    STATE_OK,
    advance,
    ensure_tracking,
    get_tracking,
    record_failure,
)

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
POSITIONS_CHANNEL = "bookstore_projection_positions"
ERROR_MAX_CHARS = 2000
# How often a batch re-reads the store when another runner moved the position first.
MAX_RACES = 3

PositionListener = Callable[[str, int], None]


@dataclass(frozen=True)
class BatchResult:
    """What one catch-up did: where it started and ended, and the error that stopped it."""

    name: str
    start: int
    position: int
    head: int
    applied: int
    error: str | None = None
    error_position: int | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def caught_up(self) -> bool:
        return not self.failed and self.position >= self.head


class _EventFailedError(Exception):
    """The event at `position` could not be applied; `before` are the batch's earlier events."""

    def __init__(
        self, start: int, position: int, cause: BaseException, before: Sequence[Positioned]
    ) -> None:
        super().__init__(f"event at position {position}: {cause!r}")
        self.start = start
        self.position = position
        self.cause = cause
        self.before = before


class _BatchWriteError(Exception):
    """Writing a batch of several events failed in the database; which event is unknown."""

    def __init__(self, start: int, end: int, count: int, cause: BaseException) -> None:
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


class Runner:
    """Catches projections up with an application's event store, into a read database."""

    def __init__(
        self,
        app: Application[Any],
        engine: Engine,
        projections: Iterable[Projection],
        *,
        idle_timeout_seconds: int = 600,
    ) -> None:
        self.app = app
        self.engine = engine
        self.projections = {projection.name: projection for projection in projections}
        self.idle_timeout_seconds = idle_timeout_seconds
        self.listeners: list[PositionListener] = []

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
        return self.app.recorder.max_notification_id() or 0

    # ------------------------------------------------------------------ public

    def catch_up(self, name: str, batch_size: int = DEFAULT_BATCH_SIZE) -> BatchResult:
        """Apply at most `batch_size` of the projection's events, in one transaction."""
        projection = self.projection(name)
        if batch_size < 1:
            msg = "batch_size must be at least 1"
            raise ValueError(msg)
        start, idle = self._idle_result(name)
        if idle is not None:
            return idle
        try:
            result = self._batch(projection, batch_size, start)
        except _EventFailedError as failure:
            result = self._stop_at(projection, failure)
        except _BatchWriteError as failure:
            result = self._find_failing_event(projection, failure)
        if result.position != result.start or result.failed:
            for listener in self.listeners:
                listener(name, result.position)
        return result

    def catch_up_fully(
        self,
        name: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_seconds: float | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> BatchResult:
        """Run batches until caught up, stopped by a failure, or out of time."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        start: int | None = None
        applied = 0
        while True:
            result = self.catch_up(name, batch_size)
            start = result.start if start is None else start
            applied += result.applied
            out_of_time = deadline is not None and time.monotonic() >= deadline
            stopping = should_stop is not None and should_stop()
            if result.caught_up or result.failed or out_of_time or stopping:
                return BatchResult(
                    name=name,
                    start=start,
                    position=result.position,
                    head=result.head,
                    applied=applied,
                    error=result.error,
                    error_position=result.error_position,
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

    # ------------------------------------------------------------------ batches

    def _idle_result(self, name: str) -> tuple[int, BatchResult | None]:
        """The tracked position, and a result when there is nothing to do.

        Checked without the lock, so idle wake-ups take no write lock.
        """
        with self.engine.connect() as connection:
            found = get_tracking(connection, name)
        head = self.head()
        position = found.position if found is not None else 0
        if found is not None and found.state == STATE_OK and position >= head:
            return position, BatchResult(name, position, position, head, 0)
        return position, None

    def _lock(self, connection: Connection, name: str) -> tuple[int, int]:
        """Take the projection's lock, then read its position and active version."""
        lock_projection(connection, name, idle_timeout_seconds=self.idle_timeout_seconds)
        found = None
        if connection.dialect.name == "postgresql":
            found = get_tracking(connection, name)  # already tracked: no write needed
        if found is None:
            # On SQLite this INSERT is the transaction's first write: it takes the write lock.
            ensure_tracking(connection, name)
            found = get_tracking(connection, name)
        assert found is not None
        return found.position, found.version

    def _read(
        self, projection: Projection, start: int, head: int, limit: int
    ) -> list[Notification]:
        return list(
            self.app.recorder.select_notifications(
                start, limit, stop=head, topics=projection.topics, inclusive_of_start=False
            )
        )

    def _decode(self, start: int, notifications: Sequence[Notification]) -> list[Positioned]:
        decoded: list[Positioned] = []
        for notification in notifications:
            try:
                event = self.app.mapper.to_domain_event(notification)
            except Exception as error:
                raise _EventFailedError(start, notification.id, error, decoded) from error
            decoded.append(Positioned(notification.id, notification.topic, event))
        return decoded

    def _tracked_position(self, name: str) -> int:
        """The projection's committed position, read without its lock (0 if untracked)."""
        with self.engine.connect() as connection:
            found = get_tracking(connection, name)
        return found.position if found is not None else 0

    def _batch(self, projection: Projection, limit: int, start: int | None = None) -> BatchResult:
        """Read the events after `start`, then apply them under the lock if still there.

        The event store is read *before* the read-database transaction begins, never while
        holding its lock: in embedded mode both are one SQLite file, and the store's
        writers hold its connection pool's writer slot while they wait for the file's
        write lock, so a runner asking that pool for a connection while holding the file's
        write lock deadlocks with them (until timeouts fail commands and batches alike).
        Taking the lock afterwards and checking that the tracked position is still `start`
        keeps every event counted exactly once, however many runners race.
        """
        name = projection.name
        if start is None:
            start = self._tracked_position(name)
        head = start
        for _ in range(MAX_RACES):
            head = self.head()
            if head <= start:
                return BatchResult(name, start, start, head, 0)
            notifications = self._read(projection, start, head, limit)
            end = head if len(notifications) < limit else notifications[-1].id
            events = self._decode(start, notifications)
            with self.engine.begin() as connection:
                locked_start, version = self._lock(connection, name)
                if locked_start == start:
                    self._apply(projection, connection, events, start, end)
                    advance(connection, name, version, end)
                    self._notify(connection, name, end)
            if locked_start == start:
                return BatchResult(name, start, end, head, len(events))
            # Another runner applied a batch meanwhile: read again from where it stopped.
            start = locked_start
        return BatchResult(name, start, start, head, 0)

    @staticmethod
    def _apply(
        projection: Projection,
        connection: Connection,
        events: Sequence[Positioned],
        start: int,
        end: int,
    ) -> None:
        try:
            projection.apply(connection, events)
        except HandlerError as error:
            raise _EventFailedError(
                start, error.position, error.cause, events[: error.index]
            ) from error
        except DBAPIError as error:
            if not _is_data_error(error):
                raise
            if len(events) == 1:
                raise _EventFailedError(start, events[0].position, error, []) from error
            raise _BatchWriteError(start, end, len(events), error) from error

    def _stop_at(self, projection: Projection, failure: _EventFailedError) -> BatchResult:
        """Apply the events before the failed one, stop just before it, record the error."""
        name = projection.name
        error = _describe(failure.cause)
        stop = failure.position - 1
        try:
            with self.engine.begin() as connection:
                start, version = self._lock(connection, name)
                moved = start != failure.start
                if not moved:
                    previous = get_tracking(connection, name, version)
                    projection.apply(connection, failure.before)
                    record_failure(
                        connection,
                        name,
                        version,
                        position=stop,
                        error_position=failure.position,
                        error=error,
                    )
                    self._notify(connection, name, stop)
        except (HandlerError, DBAPIError) as again:
            if isinstance(again, DBAPIError) and not _is_data_error(again):
                raise
            # The earlier events fail once written together: find the culprit one by one.
            return self._find_failing_event(
                projection,
                _BatchWriteError(failure.start, failure.position, len(failure.before) + 1, again),
            )
        if moved:
            # Another runner moved on meanwhile: its outcome stands. (The store is read
            # only now, with the read database's lock released.)
            return BatchResult(name, start, start, self.head(), 0)
        repeated = (
            previous is not None
            and previous.state == STATE_FAILED
            and previous.error_position == failure.position
            and previous.last_error == error
        )
        if repeated:
            # Retried every run until fixed: say it once with the traceback, then briefly.
            log.warning("projection %s still stopped at event %s", name, failure.position)
        else:
            log.error(
                "projection %s stopped at event %s: %s",
                name,
                failure.position,
                error,
                exc_info=failure.cause,
            )
        return BatchResult(
            name,
            failure.start,
            stop,
            self.head(),
            len(failure.before),
            error=error,
            error_position=failure.position,
        )

    def _find_failing_event(self, projection: Projection, failure: _BatchWriteError) -> BatchResult:
        """Repeat the failed range one event per transaction, up to the one that fails."""
        log.warning(
            "projection %s: a batch of %s events failed to write (%s); retrying one by one",
            projection.name,
            failure.count,
            failure,
        )
        result = BatchResult(projection.name, failure.start, failure.start, self.head(), 0)
        for _ in range(failure.count):
            try:
                result = self._batch(projection, 1)
            except _EventFailedError as single:
                return self._stop_at(projection, single)
            if result.position >= failure.end:
                break
        return result

    def _notify(self, connection: Connection, name: str, position: int) -> None:
        """Tell waiting readers the new position, delivered by PostgreSQL at commit."""
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": POSITIONS_CHANNEL, "payload": f"{name}:{position}"},
            )

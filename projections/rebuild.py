"""Blue/green rebuilds: version N+1 of a projection's tables, built beside the serving N.

`Rebuilds.request(name)` records a rebuild (`projection_rebuild`, one running per
projection, enforced by the database) and `Rebuilds.run(name)` carries it out, in
whichever process runs it (a Celery task, a thread of the server, the CLI). The phases,
each committed in short transactions (a long write transaction anywhere holds the commit
watermark back for every live projection):

1. **loading**: the tables of N+1 are created beside N's (`read_model.versions`, primary
   and foreign keys only) and filled by the fast pass (`bulk_load.py`): the log up to the
   watermark of that moment, folded in memory a large batch at a time, written with COPY.
2. **indexing** (PostgreSQL): the secondary indexes, each with `CREATE INDEX
   CONCURRENTLY` (which holds no transaction id while it builds, unlike a plain CREATE
   INDEX that would stall every projection for as long), then ANALYZE.
3. **catching_up**: the normal runner catches N+1 up with the events written meanwhile,
   under N+1's own lock, while N keeps following and serving.
4. **switching**: one transaction takes N's lock (N's runners wait: it stops moving), lets
   N+1 reach N's position, takes N+1's lock, renames the tables (N's take
   `_vN`, N+1's the stable names) and flips the active tracking row; it NOTIFYs N+1's
   position, so readers waiting for a position keep being answered, by the serving
   version only.
5. **dropping_old**: N's tables are dropped, its tracking row forgotten; `done`.

On SQLite the simple way: the load writes with INSERT, no indexes are built beforehand,
and the switch drops N's tables, renames N+1's and creates their indexes in one
transaction.

Safety. N serves untouched until the switch commits. A failure (an event the handlers or
the decoding refuse: a poison event in the history), or a cancellation, drops N+1's tables
and tracking row and records the outcome; N goes on. A rebuild whose process dies (`kill
-9`) is *interrupted*: its owner is gone (on PostgreSQL a session advisory lock held by a
connection of the owner, released by the server when that connection drops; on SQLite a
heartbeat older than `stale_after_seconds`), and the next `run` resumes it: from the
start of the load if it died loading (the pass is not resumable half way), else from its
phase.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from projections.bulk_load import (
    DEFAULT_BULK_BATCH_SIZE,
    MIN_EVENTS_FOR_WORKERS,
    BulkLoad,
    LoadCancelledError,
    LoadFailedError,
    folds_in_bulk,
)
from projections.locks import advisory_key, lock_version
from projections.runner import Runner, notify_position
from read_model import rebuilds as rows
from read_model.rebuilds import Rebuild, RebuildRunningError
from read_model.tracking import (
    FIRST_VERSION,
    LogPosition,
    Tracking,
    active_version,
    advance,
    ensure_tracking,
    forget_version,
    get_tracking,
    start_version,
    switch_active,
    touch_tracking,
)
from read_model.versions import VersionTables, drop_invalid_indexes, drop_tables, swap_in

log = logging.getLogger(__name__)

DEFAULT_TAIL_BATCH_SIZE = 2000
SWITCH_ATTEMPTS = 20
# PostgreSQL: memory each index build may use (a trigram GIN index builds ~3x faster with
# 256 MB than with the default 64 MB, and its CONCURRENTLY validation, which sorts one
# entry per trigram of every row, 1-1.4 s faster again at 1 million rows with 1 GB: its
# sort then stays in memory). Per session, and only the rebuild's.
INDEX_BUILD_MEMORY = "1GB"


class NoRebuildError(LookupError):
    """The projection has no unfinished rebuild to run or cancel."""


class _CancelledError(Exception):
    pass


class _InterruptedError(Exception):
    """The process is stopping: leave the rebuild to be resumed."""


@dataclass(frozen=True)
class RebuildOptions:
    """How a rebuild runs. `workers`: processes that fold the log (PostgreSQL; 0 folds in
    the running thread). `unlogged`: load into UNLOGGED tables, then SET LOGGED (which
    rewrites each table in one transaction that holds the watermark back while it runs;
    measured no faster to load here, so off by default). Worker processes are used only
    for logs of `min_events_for_workers` events or more (they take seconds to start).
    `pause_gc`: no cyclic garbage collection while a batch is folded (only where this
    process is the rebuild's own)."""

    batch_size: int = DEFAULT_BULK_BATCH_SIZE
    tail_batch_size: int = DEFAULT_TAIL_BATCH_SIZE
    workers: int = 0
    min_events_for_workers: int = MIN_EVENTS_FOR_WORKERS
    unlogged: bool = False
    pause_gc: bool = False
    heartbeat_seconds: float = 2.0
    stale_after_seconds: float = 30.0


@dataclass(frozen=True)
class RebuildStatus:
    """A rebuild as an operator sees it: its row, whether its owner is alive, the rate."""

    rebuild: Rebuild
    owner_alive: bool

    @property
    def state(self) -> str:
        """The row's state; `interrupted` for a running one whose owner is gone."""
        if self.rebuild.running and not self.owner_alive and self.rebuild.owner is not None:
            return "interrupted"
        return self.rebuild.state

    @property
    def elapsed_seconds(self) -> float:
        end = self.rebuild.finished_at or datetime.now(UTC)
        return max(0.0, (end - self.rebuild.started_at).total_seconds())

    @property
    def events_per_second(self) -> float:
        elapsed = self.elapsed_seconds
        return self.rebuild.events_applied / elapsed if elapsed > 0 else 0.0

    @property
    def ratio(self) -> float:
        target = self.rebuild.target_position
        if not self.rebuild.running or target <= 0:
            return 1.0 if self.rebuild.state == rows.DONE else 0.0
        return min(1.0, self.rebuild.position / target)

    @property
    def eta_seconds(self) -> float | None:
        """Time left to reach the target at the rate so far (None before any progress)."""
        rebuild = self.rebuild
        elapsed = self.elapsed_seconds
        if not rebuild.running or rebuild.position <= 0 or elapsed <= 0:
            return None
        rate = rebuild.position / elapsed
        return max(0.0, rebuild.target_position - rebuild.position) / rate

    def as_dict(self) -> dict[str, Any]:
        rebuild = self.rebuild
        eta = self.eta_seconds
        return {
            "version": rebuild.version,
            "from_version": rebuild.from_version,
            "state": self.state,
            "position": rebuild.position,
            "target_position": rebuild.target_position,
            "events_applied": rebuild.events_applied,
            "events_per_second": round(self.events_per_second, 1),
            "eta_seconds": None if eta is None else round(eta, 1),
            "started_at": rebuild.started_at.isoformat(),
            "finished_at": rebuild.finished_at.isoformat() if rebuild.finished_at else None,
            "cancel_requested": rebuild.cancel_requested,
            "attempts": rebuild.attempts,
            "last_error": rebuild.last_error,
            "error_position": rebuild.error_position,
        }


# Told of the running rebuild's row after each step (the CLI's progress bar).
Observer = Callable[[Rebuild], None]


def rebuild_lock_key(name: str) -> int:
    """The session advisory lock an owner of a rebuild of `name` holds while it runs."""
    return advisory_key(f"rebuild:{name}")


class Rebuilds:
    """Requests, runs, resumes and cancels the rebuilds of one runner's projections."""

    def __init__(self, runner: Runner, options: RebuildOptions | None = None) -> None:
        self.runner = runner
        self.engine = runner.engine
        self.options = options or RebuildOptions()
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._running: dict[str, threading.Thread | None] = {}
        self._guard = threading.Lock()

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    # ------------------------------------------------------------------ asking

    def request(self, name: str, *, requested_by: str | None = None) -> Rebuild:
        """Record a rebuild of `name` to run: a new one, or the interrupted one (resumed).

        `RebuildRunningError` when one is running with a live owner; `KeyError` for a
        projection the runner does not know.
        """
        self.runner.projection(name)
        with self.engine.begin() as connection:
            running = rows.running_rebuild(connection, name)
        if running is not None:
            if self.owner_alive(running):
                raise RebuildRunningError(name, running)
            return running
        with self.engine.begin() as connection:
            from_version = active_version(connection, name)
            version = rows.next_version(connection, name)
        try:
            with self.engine.begin() as connection:
                return rows.begin_rebuild(
                    connection,
                    name=name,
                    version=version,
                    from_version=from_version,
                    requested_by=requested_by,
                )
        except RebuildRunningError:
            with self.engine.connect() as connection:
                raise RebuildRunningError(name, rows.running_rebuild(connection, name)) from None

    def cancel(self, name: str) -> Rebuild:
        """Ask the running rebuild of `name` to stop. Its owner drops the new version's
        tables at its next step; a rebuild nobody runs any more is cleaned up here."""
        self.runner.projection(name)
        with self.engine.begin() as connection:
            found = rows.request_cancel(connection, name)
        if found is None:
            raise NoRebuildError(name)
        if not self.owner_alive(found):
            with self._owning(found) as owned:
                if owned:
                    self._cancelled(found)
        with self.engine.connect() as connection:
            latest = rows.get_rebuild(connection, name, found.version)
        assert latest is not None
        return latest

    # ------------------------------------------------------------------ looking

    def owner_alive(self, rebuild: Rebuild) -> bool:
        """Whether some process runs this rebuild now."""
        if not rebuild.running:
            return False
        with self._guard:
            thread = self._running.get(rebuild.name)
        if thread is not None and thread.is_alive():
            return True
        if self.postgres:
            with self.engine.connect() as connection:
                return _advisory_lock_held(connection, rebuild_lock_key(rebuild.name))
        if rebuild.owner is None or rebuild.heartbeat_at is None:
            return False
        age = (datetime.now(UTC) - rebuild.heartbeat_at).total_seconds()
        return age < self.options.stale_after_seconds

    def statuses(self) -> dict[str, RebuildStatus]:
        """Each projection's running rebuild, or else its last one."""
        with self.engine.connect() as connection:
            latest = rows.latest_rebuilds(connection)
        return {
            name: RebuildStatus(found, self.owner_alive(found))
            for name, found in latest.items()
            if name in self.runner.names
        }

    def interrupted(self) -> list[str]:
        """Projections whose rebuild is unfinished and unowned (to resume)."""
        return [
            name
            for name, status in self.statuses().items()
            if status.rebuild.running and not status.owner_alive
        ]

    # ------------------------------------------------------------------ in the background

    def start_in_thread(
        self, name: str, *, should_stop: Callable[[], bool] | None = None
    ) -> threading.Thread:
        """Run the unfinished rebuild of `name` in a thread of this process."""
        with self._guard:
            current = self._running.get(name)
            if current is not None and current.is_alive():
                return current
            thread = threading.Thread(
                target=self._run_logged,
                args=(name, should_stop),
                name=f"rebuild-{name}",
                daemon=True,
            )
            self._running[name] = thread
        thread.start()
        return thread

    def join(self, timeout: float) -> None:
        """Wait for this process's rebuild threads (told to stop by their `should_stop`)."""
        deadline = time.monotonic() + timeout
        with self._guard:
            threads = [thread for thread in self._running.values() if thread is not None]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run_logged(self, name: str, should_stop: Callable[[], bool] | None) -> None:
        try:
            self.run(name, should_stop=should_stop)
        except RebuildRunningError:
            log.info("rebuild of %s: another process runs it", name)
        except Exception:
            log.exception("rebuild of %s stopped", name)

    # ------------------------------------------------------------------ running

    def run(
        self,
        name: str,
        *,
        observer: Observer | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Rebuild:
        """Carry out (or resume) the unfinished rebuild of `name`, in this thread.

        Returns its row as it ended (done, cancelled or failed), or as it stands when
        `should_stop` said so (the process is stopping: resumable). `RebuildRunningError`
        if another process owns it.
        """
        projection = self.runner.projection(name)
        with self.engine.connect() as connection:
            found = rows.running_rebuild(connection, name)
        if found is None:
            raise NoRebuildError(name)
        with self._owning(found) as owned:
            if not owned:
                raise RebuildRunningError(name, found)
            job = _Job(self, projection.name, found, observer, should_stop or (lambda: False))
            with self._heartbeat(job):
                return job.run()

    @contextmanager
    def _owning(self, rebuild: Rebuild) -> Iterator[bool]:
        """Own a rebuild for the block (False: a live process owns it already).

        PostgreSQL: a session advisory lock on a connection kept for the block (the server
        releases it if this process dies). SQLite: the row is claimed only if nobody
        claimed it or its owner's heartbeat is stale (one statement, so two claimants
        cannot both win).
        """
        if not self.postgres:
            stale = datetime.now(UTC) - timedelta(seconds=self.options.stale_after_seconds)
            with self.engine.begin() as connection:
                owned = rows.claim_rebuild(
                    connection, rebuild.name, rebuild.version, self.owner, unless_fresh=stale
                )
            yield owned
            return
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        key = rebuild_lock_key(rebuild.name)
        try:
            owned = bool(
                connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": key}
                ).scalar_one()
            )
            try:
                if owned:
                    with self.engine.begin() as claim:
                        rows.claim_rebuild(claim, rebuild.name, rebuild.version, self.owner)
                yield owned
            finally:
                if owned:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        finally:
            connection.close()

    @contextmanager
    def _heartbeat(self, job: _Job) -> Iterator[None]:
        """SQLite: say every few seconds that the owner is alive."""
        if self.postgres:
            yield
            return
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.options.heartbeat_seconds):
                try:
                    with self.engine.begin() as connection:
                        rows.update_rebuild(
                            connection, job.name, job.version, heartbeat_at=datetime.now(UTC)
                        )
                except Exception:
                    log.warning("rebuild heartbeat failed", exc_info=True)

        thread = threading.Thread(target=beat, name=f"rebuild-heartbeat-{job.name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    def _cancelled(self, rebuild: Rebuild) -> None:
        """Clean up after a cancelled rebuild that nobody runs (see `cancel`)."""
        job = _Job(self, rebuild.name, rebuild, None, lambda: False)
        job.give_up(rows.CANCELLED)


def _advisory_lock_held(connection: Connection, key: int) -> bool:
    """Whether any session of this database holds the session advisory lock `key`."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return bool(
        connection.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                " AND database = (SELECT oid FROM pg_database"
                "                 WHERE datname = current_database())"
                " AND classid::bigint = :high AND objid::bigint = :low AND objsubid = 1"
                " AND granted)"
            ),
            {"high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF},
        ).scalar_one()
    )


class _Job:
    """One run of one rebuild, phase by phase."""

    def __init__(
        self,
        rebuilds: Rebuilds,
        name: str,
        rebuild: Rebuild,
        observer: Observer | None,
        should_stop: Callable[[], bool],
    ) -> None:
        self.rebuilds = rebuilds
        self.runner = rebuilds.runner
        self.engine = rebuilds.engine
        self.options = rebuilds.options
        self.name = name
        self.rebuild = rebuild
        self.version = rebuild.version
        self.old = rebuild.from_version
        self.projection = self.runner.projection(name)
        self.observer = observer
        self.should_stop = should_stop
        self.tables = VersionTables(
            self.projection.tables,
            self.version,
            self.engine.dialect.name,
            unlogged=self.options.unlogged,
        )
        self._cancel_seen = rebuild.cancel_requested

    # ------------------------------------------------------------------ phases

    def run(self) -> Rebuild:
        phases: dict[str, Callable[[], str]] = {
            rows.PENDING: self.load,
            rows.LOADING: self.load,
            rows.INDEXING: self.index,
            rows.CATCHING_UP: self.catch_up,
            rows.SWITCHING: self.switch,
            rows.DROPPING_OLD: self.drop_old,
        }
        state = self.rebuild.state
        try:
            while state in phases:
                if state not in (rows.SWITCHING, rows.DROPPING_OLD):
                    self._check()
                state = phases[state]()
                self._set(state=state)
            return self._row()
        except _CancelledError:
            return self.give_up(rows.CANCELLED)
        except _InterruptedError:
            log.info("rebuild of %s v%s interrupted: it resumes later", self.name, self.version)
            return self._row()
        except _FailedError as failure:
            log.error(
                "rebuild of %s v%s failed at event %s: %s",
                self.name,
                self.version,
                failure.position,
                failure.error,
                exc_info=failure.__cause__,
            )
            return self.give_up(rows.FAILED, failure.error, failure.position)

    def load(self) -> str:
        """Phase 1: new tables, filled by the fast pass (from the start of the log)."""
        with self.engine.begin() as connection:
            if self.old == FIRST_VERSION:
                ensure_tracking(connection, self.name)  # never caught up: serving at 0
            self.tables.drop(connection)
            self.tables.create(connection)
            start_version(connection, self.name, self.version)
        self._set(state=rows.LOADING, position=0, events_applied=0)
        if folds_in_bulk(self.projection):
            self._bulk_load()
        else:
            self._runner_load()
        if self.tables.unlogged:
            with self.engine.begin() as connection:
                self.tables.set_logged(connection)
        return rows.INDEXING

    def _bulk_load(self) -> None:
        load = BulkLoad(
            self.runner.app,
            self.engine,
            self.projection,
            self.tables,
            batch_size=self.options.batch_size,
            workers=self.options.workers,
            min_events_for_workers=self.options.min_events_for_workers,
            pause_gc=self.options.pause_gc,
        )
        self._set(target_position=load.target)

        def progress(end: LogPosition, passed: int, applied: int) -> None:
            with self.engine.begin() as connection:
                advance(connection, self.name, self.version, passed, end)
                found = self._update(connection, position=passed, events_applied=applied)
            self._observe(found)

        try:
            load.run(progress, self._stopping)
        except LoadCancelledError:
            self._check()
            raise _InterruptedError from None
        except LoadFailedError as failure:
            raise _FailedError(failure.position, failure.error) from failure

    def _runner_load(self) -> None:
        """Projections with an `apply` of their own: the normal runner, from 0."""
        self._set(target_position=self.runner.head())
        self._follow(self.options.batch_size)

    def index(self) -> str:
        """Phase 2 (PostgreSQL): secondary indexes, built concurrently, then ANALYZE."""
        if not self.rebuilds.postgres:
            return rows.CATCHING_UP
        with self.engine.connect() as raw:
            connection = raw.execution_options(isolation_level="AUTOCOMMIT")
            connection.execute(text(f"SET maintenance_work_mem = '{INDEX_BUILD_MEMORY}'"))
            drop_invalid_indexes(connection, self.tables.all_tables)
            for statement in self.tables.index_statements(concurrently=True):
                self._check()
                connection.execute(statement)
            for table in self.tables.all_tables:
                connection.execute(text(f'ANALYZE "{table.name}"'))
            connection.execute(text("RESET maintenance_work_mem"))
        return rows.CATCHING_UP

    def catch_up(self) -> str:
        """Phase 3: the normal runner brings N+1 up to the log's end."""
        self._follow(self.options.tail_batch_size)
        return rows.SWITCHING

    def _follow(self, batch_size: int) -> None:
        applied = self._row().events_applied
        while True:
            self._check()
            result = self.runner.catch_up(
                self.name, batch_size, version=self.version, should_stop=self._stopping
            )
            applied += result.applied
            self._set(position=result.position, events_applied=applied)
            if result.failed:
                raise _FailedError(result.error_position or 0, result.error or "failed")
            if not result.more and not result.held_back:
                return

    def switch(self) -> str:
        """Phase 4: one transaction makes N+1 serve (retried if readers hold the tables)."""
        if self._active() == self.version:
            return rows.DROPPING_OLD  # switched before an interruption
        for attempt in range(SWITCH_ATTEMPTS):
            self._check()
            try:
                switched = (
                    self._switch_postgres() if self.rebuilds.postgres else self._switch_sqlite()
                )
            except DBAPIError as error:
                if error.connection_invalidated:
                    raise
                log.warning(
                    "rebuild of %s: switch attempt %s failed (%s); retrying",
                    self.name,
                    attempt + 1,
                    type(error.orig).__name__ if error.orig else error,
                )
                switched = False
            if switched:
                return rows.DROPPING_OLD
            time.sleep(min(0.05 * 2**attempt, 2.0))
        msg = f"could not switch {self.name} to version {self.version}"
        raise RuntimeError(msg)

    def _switch_postgres(self) -> bool:
        timeout = self.runner.idle_timeout_seconds
        with self.engine.begin() as connection:
            # N's runners wait for its lock from now on, before touching a table: N stands
            # still (and a batch of N that ran before would fail its compare-and-set).
            lock_version(connection, self.name, self.old, idle_timeout_seconds=timeout)
            old = get_tracking(connection, self.name, self.old)
            if old is None or not old.is_active:
                return False
            # Bring N+1 up to it (other connections, N+1's own lock), then hold N+1 too.
            self._reach(_log_position(old))
            lock_version(connection, self.name, self.version, idle_timeout_seconds=timeout)
            new = get_tracking(connection, self.name, self.version)
            if new is None or _log_position(new) < _log_position(old):
                return False
            self._make_serving(connection, new)
        self._published(new)
        return True

    def _switch_sqlite(self) -> bool:
        self._follow(self.options.tail_batch_size)
        with self.engine.begin() as connection:
            touch_tracking(connection, self.name, self.old)  # the database's write lock
            old = get_tracking(connection, self.name, self.old)
            new = get_tracking(connection, self.name, self.version)
            if old is None or new is None or not old.is_active:
                return False
            if _log_position(new) < _log_position(old):
                return False  # N moved on meanwhile: catch up again
            self._make_serving(connection, new)
        self._published(new)
        return True

    def _reach(self, target: LogPosition) -> Tracking:
        """Catch N+1 up until it has processed everything up to `target`."""
        while True:
            with self.engine.connect() as connection:
                new = get_tracking(connection, self.name, self.version)
            if new is None:
                msg = f"version {self.version} of {self.name} is no longer tracked"
                raise RuntimeError(msg)
            if _log_position(new) >= target:
                return new
            result = self.runner.catch_up(
                self.name,
                self.options.tail_batch_size,
                version=self.version,
                should_stop=self._stopping,
            )
            if result.failed:
                raise _FailedError(result.error_position or 0, result.error or "failed")
            if result.log_position == result.start_log_position and self._stopping():
                raise _InterruptedError

    def _make_serving(self, connection: Connection, new: Tracking) -> None:
        swap_in(connection, self.tables, self.old)
        switch_active(connection, self.name, self.old, self.version)
        notify_position(connection, self.name, self.version, _log_position(new), new.position)
        self._update(connection, state=rows.DROPPING_OLD, position=new.position)

    def _published(self, new: Tracking) -> None:
        """Readers waiting in this process hear the new serving version's position."""
        for listener in self.runner.listeners:
            listener(self.name, _log_position(new))
        log.info("rebuild of %s: version %s serves", self.name, self.version)

    def drop_old(self) -> str:
        """Phase 5: N's tables go (PostgreSQL; SQLite dropped them in the switch)."""
        for attempt in range(SWITCH_ATTEMPTS):
            try:
                with self.engine.begin() as connection:
                    if self.rebuilds.postgres:
                        connection.execute(text("SET LOCAL lock_timeout = '2s'"))
                    drop_tables(connection, self.projection.tables, self.old)
                    forget_version(connection, self.name, self.old)
                    rows.finish_rebuild(connection, self.name, self.version, rows.DONE)
                return rows.DONE
            except DBAPIError as error:
                if error.connection_invalidated:
                    raise
                time.sleep(min(0.05 * 2**attempt, 2.0))
        msg = f"could not drop version {self.old} of {self.name}"
        raise RuntimeError(msg)

    # ------------------------------------------------------------------ endings

    def give_up(self, state: str, error: str | None = None, position: int | None = None) -> Rebuild:
        """Cancelled or failed: N+1's tables and tracking go, N serves on."""
        if self._active() == self.version:
            # Switched already (a cancel that came too late): finish instead.
            self.drop_old()
            return self._row()
        with self.engine.begin() as connection:
            if self.rebuilds.postgres:
                connection.execute(text("SET LOCAL lock_timeout = '10s'"))
            self.tables.drop(connection)
            forget_version(connection, self.name, self.version)
            rows.finish_rebuild(
                connection, self.name, self.version, state, error=error, error_position=position
            )
        log.info("rebuild of %s v%s %s", self.name, self.version, state)
        return self._row()

    # ------------------------------------------------------------------ helpers

    def _stopping(self) -> bool:
        return self._cancel_seen or self.should_stop()

    def _check(self) -> None:
        """Raise if cancelled (the row says so) or if the process is stopping."""
        if not self._cancel_seen:
            with self.engine.connect() as connection:
                found = rows.get_rebuild(connection, self.name, self.version)
            self._cancel_seen = found is None or found.cancel_requested
        if self._cancel_seen:
            raise _CancelledError
        if self.should_stop():
            raise _InterruptedError

    def _active(self) -> int:
        with self.engine.connect() as connection:
            return active_version(connection, self.name) or FIRST_VERSION

    def _row(self) -> Rebuild:
        with self.engine.connect() as connection:
            found = rows.get_rebuild(connection, self.name, self.version)
        assert found is not None
        return found

    def _update(self, connection: Connection, **values: Any) -> Rebuild | None:
        """Change the row in the caller's transaction; the row as it now is."""
        values.setdefault("heartbeat_at", datetime.now(UTC))
        rows.update_rebuild(connection, self.name, self.version, **values)
        found = rows.get_rebuild(connection, self.name, self.version)
        if found is not None:
            self._cancel_seen = self._cancel_seen or found.cancel_requested
        return found

    def _observe(self, found: Rebuild | None) -> None:
        """Tell the observer, once the change is committed (it may write too)."""
        if found is not None and self.observer is not None:
            self.observer(found)

    def _set(self, **values: Any) -> None:
        with self.engine.begin() as connection:
            found = self._update(connection, **values)
        self._observe(found)


class _FailedError(Exception):
    def __init__(self, position: int, error: str) -> None:
        super().__init__(error)
        self.position = position
        self.error = error


def _log_position(found: Tracking) -> LogPosition:
    return found.log_position or LogPosition(0, found.position)

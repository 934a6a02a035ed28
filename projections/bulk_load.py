"""The fast first pass of a rebuild: the log folded in memory, a large batch at a time.

A rebuild's version N+1 starts empty, so most of what the normal runner does per batch is
waste there: looking up rows that cannot exist yet, upserting rows that are new. This
pass reads the projection's events in the log's order up to a fixed point (the commit
watermark when it starts, or the head on SQLite), and per batch:

- decodes them as the application's mapper does, upcasting included (`fast_decode.py`:
  orjson where the mapper adds nothing else, the mapper itself otherwise);
- loads from the new tables only the rows that can exist already: those of aggregates
  whose first event in the batch is not their first event ever (version > 1), by primary
  key; a registration never needs a lookup;
- runs the projection's own handlers on the rows in memory (`Projection._apply_one`, the
  same code the runner runs, so both give the same rows);
- writes the rows it created with COPY (`read_model.bulk_writes`), upserts the few that
  existed, deletes those removed, and COPYs child rows; one short transaction per batch
  (a long one would hold the commit watermark back for every live projection).

Memory is bounded by the batch, never by the log. With `workers` > 0 the aggregates are
split between that many processes by a hash of their id (an aggregate's events stay in
order in one process): this process only finds each batch's bounds (one short query along
the index), and each worker reads its share of the batch from the event store itself,
decodes, folds and writes it on its own connections. Position tracking then advances once
every share of a batch is written, in a transaction of its own: the pass is not resumable
half way, and a rebuild interrupted during it starts the pass again on empty tables
(`rebuild.py`).

Projections that replace `apply` with their own (rather than handlers) are loaded by the
normal runner instead: this pass could not reproduce what they do.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier
from sqlalchemy import Connection, Engine, Table, create_engine, delete, pool

from projections.base import Batch, HandlerError, Projection
from projections.events import Positioned
from projections.fast_decode import EventDecoder
from projections.rows import Row, RowBuffer
from read_model.bulk_writes import copy_rows
from read_model.tracking import LogPosition
from read_model.upserts import upsert
from read_model.versions import VersionTables

log = logging.getLogger(__name__)

DEFAULT_BULK_BATCH_SIZE = 20_000
# Worker processes take a second or more to start (each imports the application): below
# this many events in the log one process is quicker.
MIN_EVENTS_FOR_WORKERS = 100_000
_CHUNK = 1000

# A stored event as read for the pass: (tx_id, notification id, aggregate id, aggregate
# version, topic, state). Plain tuples: they pickle fast on their way to a worker.
RawEvent = tuple[int, int, UUID, int, str, bytes]


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


def folds_in_bulk(projection: Projection) -> bool:
    """Whether the projection is handlers over rows (the pass can load it)."""
    return type(projection).apply is Projection.apply


# ---------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class ScanBatch:
    """One batch of the pass: its events, and where the projection stands after them."""

    events: list[RawEvent]
    end: LogPosition
    passed: int


@dataclass(frozen=True)
class ScanSpan:
    """One batch of the pass by its bounds only (its events are read by the workers): the
    events after `after` up to `last` inclusive, `count` of them, and where the projection
    stands after them."""

    after: LogPosition
    last: LogPosition
    count: int
    end: LogPosition
    passed: int


@dataclass(frozen=True)
class EventSource:
    """Where a worker process reads its share of each batch (PostgreSQL): picklable."""

    conninfo: str
    connect_kwargs: dict[str, Any]
    schema: str
    table: str
    topics: list[str]
    watermark: int

    def identifier(self) -> Identifier:
        return Identifier(self.schema, self.table)


class LogScan:
    """The projection's events from a position up to a point fixed when the scan begins.

    PostgreSQL: everything below the commit watermark of that moment (the events of every
    transaction that had ended), in `(tx_id, notification_id)` order, a batch per COPY.
    Other stores: up to the head of that moment, in id order.
    """

    def __init__(self, app: Application[Any], topics: Sequence[str], batch_size: int) -> None:
        self.app = app
        self.topics = list(topics)
        self.batch_size = batch_size
        recorder = app.recorder
        self._postgres = recorder if isinstance(recorder, PostgresApplicationRecorder) else None
        self.watermark = 0
        self.head = 0
        if self._postgres is not None:
            with self._postgres.datastore.get_connection() as connection:
                row = connection.execute(
                    SQL(
                        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS w,"
                        " (SELECT max(notification_id) FROM {events}) AS head"
                    ).format(events=self._table())
                ).fetchone()
            assert row is not None
            self.watermark = int(row["w"])
            self.head = int(row["head"] or 0)
        else:
            self.head = recorder.max_notification_id() or 0

    def _table(self) -> Identifier:
        assert self._postgres is not None
        return Identifier(self._postgres.datastore.schema, self._postgres.events_table_name)

    @property
    def source(self) -> EventSource | None:
        """How a worker process reads this scan's events (PostgreSQL only)."""
        if self._postgres is None:
            return None
        datastore = self._postgres.datastore
        given = datastore.pool.kwargs
        given = given() if callable(given) else given or {}
        conninfo = datastore.pool.conninfo
        kwargs = {
            key: value
            for key, value in given.items()
            if key in {"dbname", "host", "port", "user", "password"}
        }
        return EventSource(
            conninfo=conninfo() if callable(conninfo) else conninfo,
            connect_kwargs=kwargs,
            schema=datastore.schema,
            table=self._postgres.events_table_name,
            topics=self.topics,
            watermark=self.watermark,
        )

    @property
    def end(self) -> LogPosition:
        """Where the projection stands once the scan is done."""
        if self._postgres is not None:
            return LogPosition(self.watermark, 0)
        return LogPosition(0, self.head)

    def batches(self, after: LogPosition) -> Iterator[ScanBatch]:
        """The batches with their events, read in this process."""
        if self._postgres is not None:
            source = self.source
            assert source is not None
            for span in self.spans(after):
                with self._postgres.datastore.get_connection() as connection:
                    events = read_share(connection, source, span, 0, 1)
                yield ScanBatch(events, span.end, span.passed)
            return
        passed = 0
        while True:
            events = self._read(after)
            if events:
                passed = max(passed, *(event[1] for event in events))
            if len(events) < self.batch_size:
                yield ScanBatch(events, self.end, self.head)
                return
            last = events[-1]
            after = LogPosition(last[0], last[1])
            yield ScanBatch(events, after, passed)

    def spans(self, after: LogPosition) -> Iterator[ScanSpan]:
        """The batches by their bounds (PostgreSQL): one short query each, by the index,
        so that this process reads no event and workers read their own shares."""
        assert self._postgres is not None
        passed = 0
        while True:
            with self._postgres.datastore.get_connection() as connection:
                row = connection.execute(
                    _SPAN.format(events=self._table()),
                    {
                        "tx": str(after.tx_id),
                        "id": after.event_id,
                        "w": str(self.watermark),
                        "limit": self.batch_size,
                    },
                ).fetchone()
            if row is None:
                yield ScanSpan(after, after, 0, self.end, max(passed, self._passed_at_end()))
                return
            last = LogPosition(int(row["tx_id"]), int(row["notification_id"]))
            count = int(row["n"])
            passed = max(passed, int(row["top"]))
            if count < self.batch_size:
                yield ScanSpan(after, last, count, self.end, max(passed, self._passed_at_end()))
                return
            yield ScanSpan(after, last, count, last, passed)
            after = last

    def _passed_at_end(self) -> int:
        """The newest store position below the scan's end (every topic)."""
        if self._postgres is None:
            return self.head
        with self._postgres.datastore.get_connection() as connection:
            row = connection.execute(
                SQL(
                    "SELECT notification_id FROM {events} WHERE tx_id < %(w)s::xid8"
                    " ORDER BY notification_id DESC LIMIT 1"
                ).format(events=self._table()),
                {"w": str(self.watermark)},
            ).fetchone()
        return int(row["notification_id"]) if row else 0

    def _read(self, after: LogPosition) -> list[RawEvent]:
        """A batch of the projection's events (stores other than PostgreSQL)."""
        found = self.app.recorder.select_notifications(
            after.event_id,
            self.batch_size,
            stop=self.head,
            topics=self.topics,
            inclusive_of_start=False,
        )
        return [
            (0, n.id, _uuid(n.originator_id), n.originator_version, n.topic, n.state) for n in found
        ]


# A batch's bounds: the next `limit` events of the log (every topic: with no filter to
# estimate, the planner reads them along the (tx_id, notification_id) index whatever the
# statistics say, even none; with the topic filter and no statistics it chose to sort the
# rest of the log, for every batch), its last event, and the newest store position passed.
# Every name is qualified: an unqualified `ORDER BY tx_id` would name an output column.
_SPAN = SQL("""
SELECT b.tx_id::text AS tx_id, b.notification_id, b.n, b.top FROM (
    SELECT e.tx_id, e.notification_id,
           row_number() OVER w AS n, max(e.notification_id) OVER w AS top
    FROM {events} e
    WHERE (e.tx_id, e.notification_id) > (%(tx)s::xid8, %(id)s)
      AND e.tx_id < %(w)s::xid8
    WINDOW w AS (ORDER BY e.tx_id, e.notification_id)
    ORDER BY e.tx_id, e.notification_id
    LIMIT %(limit)s
) b
ORDER BY b.n DESC
LIMIT 1
""")


def read_share(
    connection: Any, source: EventSource, span: ScanSpan, share: int, shares: int
) -> list[RawEvent]:
    """The projection's events of one batch whose aggregates fall to worker `share` of
    `shares`, in the log's order (an aggregate's events all fall to one worker). Bounded
    on both sides (the redundant bounds on tx_id tell the planner the range): whatever
    plan is chosen reads one batch of the log, never the rest of it."""
    if span.count == 0:
        return []
    mine = (
        SQL(" AND (hashtext(e.originator_id::text) & 2147483647) % {shares} = {share}").format(
            shares=shares, share=share
        )
        if shares > 1
        else SQL("")
    )
    statement = SQL(
        "COPY (SELECT e.tx_id::text::int8, e.notification_id, e.originator_id,"
        " e.originator_version, e.topic, e.state FROM {events} e"
        " WHERE (e.tx_id, e.notification_id) > ({tx}::xid8, {id})"
        " AND (e.tx_id, e.notification_id) <= ({last_tx}::xid8, {last_id})"
        " AND e.tx_id >= {tx}::xid8 AND e.tx_id <= {last_tx}::xid8 AND e.tx_id < {w}::xid8"
        " AND e.topic = ANY({topics}){mine}"
        " ORDER BY e.tx_id, e.notification_id LIMIT {limit}) TO STDOUT (FORMAT BINARY)"
    ).format(
        events=source.identifier(),
        tx=str(span.after.tx_id),
        id=span.after.event_id,
        last_tx=str(span.last.tx_id),
        last_id=span.last.event_id,
        w=str(source.watermark),
        topics=source.topics,
        mine=mine,
        limit=span.count,
    )
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(["int8", "int8", "uuid", "int8", "text", "bytea"])
        return [tuple(row) for row in copy.rows()]


# ---------------------------------------------------------------------------- folding


class _FoldRows(RowBuffer):
    """A batch's rows, knowing which existed in the table before it."""

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        self.present: set[UUID] = set()

    def load(self, connection: Connection, ids: Any) -> None:
        super().load(connection, ids)
        self.present.update(key for key, row in self._rows.items() if row is not None)

    def flush(self, connection: Connection) -> None:
        names = [column.name for column in self.table.columns]
        created: list[Row] = []
        changed: list[Row] = []
        gone: list[UUID] = []
        present = self.present
        rows = self._rows
        for key in self._changed:
            row = rows[key]
            if key in present:
                if row is None:
                    gone.append(key)
                else:
                    changed.append({name: row[name] for name in names})
            elif row is not None:
                created.append(row)  # COPY takes the table's columns from it
        copy_rows(connection, self.table, created)
        upsert(connection, self.table, changed)
        for start in range(0, len(gone), _CHUNK):
            connection.execute(
                delete(self.table).where(self.table.c.id.in_(gone[start : start + _CHUNK]))
            )
        self._changed.clear()


class BulkFold:
    """Folds batches of raw events into one version's tables (see the module docstring)."""

    def __init__(
        self, projection: Projection, app: Application[Any], tables: Mapping[str, Table]
    ) -> None:
        self.projection = projection
        self.decoder = EventDecoder(app.mapper)
        self.table = tables[projection.table.name]
        self.child_tables = tuple(tables[child.name] for child in projection.child_tables)

    def decode(self, events: Sequence[RawEvent]) -> list[Positioned]:
        decoded: list[Positioned] = []
        decode = self.decoder.decode
        for index, (tx_id, position, originator_id, version, topic, state) in enumerate(events):
            try:
                event = decode(position, originator_id, version, topic, state)
            except Exception as error:
                raise HandlerError(index, position, error) from error
            decoded.append(Positioned(position, topic, event, tx_id))
        return decoded

    def apply(self, connection: Connection, events: Sequence[RawEvent]) -> int:
        """Write one batch (in the caller's transaction); the number of events applied."""
        decoded = self.decode(events)
        first: dict[UUID, int] = {}
        for item in decoded:
            first.setdefault(item.event.originator_id, item.event.originator_version)
        rows = _FoldRows(self.table)
        rows.load(connection, [key for key, version in first.items() if version > 1])
        batch = Batch(self.child_tables)
        for index, item in enumerate(decoded):
            try:
                self.projection._apply_one(rows, batch, item)
            except Exception as error:
                raise HandlerError(index, item.position, error) from error
        rows.flush(connection)
        for children in batch.children.values():
            copy_rows(connection, children.table, children.rows)
        return len(decoded)


@contextmanager
def _paused_gc(paused: bool) -> Iterator[None]:
    """No cyclic garbage collection during a batch (its objects are not cyclic; the
    collector's passes over 100,000 young objects cost a third of the decoding)."""
    if not paused or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# ---------------------------------------------------------------------------- the pass


class LoadCancelledError(Exception):
    """The pass was asked to stop."""


class LoadFailedError(Exception):
    """An event could not be decoded or applied: the rebuild fails there."""

    def __init__(self, position: int, error: str) -> None:
        super().__init__(f"event at position {position}: {error}")
        self.position = position
        self.error = error


# After each batch: where the version stands, the store position passed, events applied.
Progress = Callable[[LogPosition, int, int], None]


@dataclass(frozen=True)
class LoadResult:
    end: LogPosition
    passed: int
    applied: int


class BulkLoad:
    """One run of the pass over the log, into the tables of one version."""

    def __init__(
        self,
        app: Application[Any],
        engine: Engine,
        projection: Projection,
        tables: VersionTables,
        *,
        batch_size: int = DEFAULT_BULK_BATCH_SIZE,
        workers: int = 0,
        min_events_for_workers: int = MIN_EVENTS_FOR_WORKERS,
        pause_gc: bool = False,
    ) -> None:
        self.app = app
        self.engine = engine
        self.projection = projection
        self.tables = tables
        self.batch_size = batch_size
        self.pause_gc = pause_gc
        self.scan = LogScan(app, projection.topics, batch_size)
        large = self.scan.head >= min_events_for_workers
        postgres = engine.dialect.name == "postgresql" and self.scan.source is not None
        self.workers = workers if postgres and large else 0

    @property
    def target(self) -> int:
        """The store's head when the pass began (what progress is measured against)."""
        return self.scan.head

    def run(
        self,
        progress: Progress,
        should_stop: Callable[[], bool],
        after: LogPosition | None = None,
    ) -> LoadResult:
        start = after or LogPosition(0, 0)
        if self.workers > 0:
            return self._run_in_workers(start, progress, should_stop)
        fold = BulkFold(self.projection, self.app, self.tables.tables)
        applied = 0
        passed = 0
        end = start
        for batch in self.scan.batches(start):
            if should_stop():
                raise LoadCancelledError
            with _paused_gc(self.pause_gc), self.engine.begin() as connection:
                try:
                    applied += fold.apply(connection, batch.events)
                except HandlerError as failure:
                    raise LoadFailedError(failure.position, _describe(failure.cause)) from failure
            end, passed = batch.end, batch.passed
            progress(end, passed, applied)
        return LoadResult(end, passed, applied)

    def _run_in_workers(
        self, start: LogPosition, progress: Progress, should_stop: Callable[[], bool]
    ) -> LoadResult:
        pool = _Partitions(self, self.workers)
        applied = 0
        passed = 0
        end = start
        try:
            in_flight: list[ScanSpan] = []
            for batch in self.scan.spans(start):
                if should_stop():
                    raise LoadCancelledError
                pool.send(batch)
                in_flight.append(batch)
                # Two batches in flight: a worker reads its share of the next as soon as it
                # has written the last; memory stays at a batch per worker.
                while len(in_flight) >= 2:
                    applied += pool.wait_oldest()
                    done = in_flight.pop(0)
                    end, passed = done.end, done.passed
                    progress(end, passed, applied)
            while in_flight:
                applied += pool.wait_oldest()
                done = in_flight.pop(0)
                end, passed = done.end, done.passed
                progress(end, passed, applied)
        finally:
            pool.close()
        return LoadResult(end, passed, applied)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


# ---------------------------------------------------------------------------- workers


@dataclass(frozen=True)
class _WorkerSetup:
    """What a worker process needs to fold its share: picklable, no live objects."""

    app_class: type[Application[Any]]
    env: dict[str, str]
    projection_class: type[Projection]
    read_url: str
    version: int
    unlogged: bool
    source: EventSource
    index: int
    count: int


class _Partitions:
    """Worker processes, one per share of the aggregates, told each batch's bounds in order
    through pipes; each reads its own share of the batch from the event store (this
    process reads no event, and no event is pickled from process to process).

    A worker reads its pipe until the parent closes it, so a killed parent (`kill -9`)
    leaves no worker behind: its pipe's other end closes with it.
    """

    def __init__(self, load: BulkLoad, count: int) -> None:
        source = load.scan.source
        assert source is not None
        context = multiprocessing.get_context("spawn")
        self.count = count
        self._inboxes: list[Pipe] = []
        self._outboxes: list[Pipe] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        for index in range(count):
            inbox_read, inbox_write = context.Pipe(duplex=False)
            outbox_read, outbox_write = context.Pipe(duplex=False)
            setup = _WorkerSetup(
                app_class=type(load.app),
                env={key: str(value) for key, value in load.app.env.items()},
                projection_class=type(load.projection),
                read_url=load.engine.url.render_as_string(hide_password=False),
                version=load.tables.version,
                unlogged=load.tables.unlogged,
                source=source,
                index=index,
                count=count,
            )
            process = context.Process(
                target=_worker_main,
                args=(setup, inbox_read, outbox_write),
                name=f"rebuild-{load.projection.name}-{index}",
                daemon=True,
            )
            process.start()
            inbox_read.close()
            outbox_write.close()
            self._inboxes.append(inbox_write)
            self._outboxes.append(outbox_read)
            self._processes.append(process)

    def send(self, span: ScanSpan) -> None:
        for inbox in self._inboxes:
            inbox.send(span)

    def wait_oldest(self) -> int:
        """Wait until every worker has written its share of the oldest batch sent."""
        applied = 0
        failure: LoadFailedError | None = None
        for outbox in self._outboxes:
            try:
                kind, value, detail = outbox.recv()
            except EOFError as error:
                msg = "a rebuild worker process died"
                raise RuntimeError(msg) from error
            if kind == "ok":
                applied += int(value)
            elif kind == "failed":
                found = LoadFailedError(int(value), str(detail))
                if failure is None or found.position < failure.position:
                    failure = found
            else:
                msg = f"a rebuild worker process failed: {detail}"
                raise RuntimeError(msg)
        if failure is not None:
            raise failure
        return applied

    def close(self) -> None:
        for inbox in self._inboxes:
            inbox.close()
        for process in self._processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        for outbox in self._outboxes:
            outbox.close()


def _worker_main(setup: _WorkerSetup, inbox: Pipe, outbox: Pipe) -> None:
    """A worker process: fold and write each share it is sent, until its pipe closes."""
    parent = os.getppid()
    _exit_with_parent(parent)
    app = setup.app_class(env={**setup.env, "PERSISTENCE_MODULE": "eventsourcing.popo"})
    engine = create_engine(
        setup.read_url.replace("postgresql://", "postgresql+psycopg://", 1),
        poolclass=pool.NullPool,
    )
    projection = setup.projection_class()
    tables = VersionTables(projection.tables, setup.version, "postgresql", unlogged=setup.unlogged)
    fold = BulkFold(projection, app, tables.tables)
    source = setup.source
    events = psycopg.connect(source.conninfo, autocommit=True, **source.connect_kwargs)
    failed = False
    try:
        while True:
            try:
                span: ScanSpan = inbox.recv()
            except EOFError:
                return
            if failed:
                outbox.send(("ok", 0, None))
                continue
            try:
                share = read_share(events, source, span, setup.index, setup.count)
                with _paused_gc(True), engine.begin() as connection:
                    outbox.send(("ok", fold.apply(connection, share), None))
            except HandlerError as failure:
                failed = True
                outbox.send(("failed", failure.position, _describe(failure.cause)))
            except Exception as error:
                failed = True
                log.exception("rebuild worker failed")
                outbox.send(("error", 0, _describe(error)))
    finally:
        events.close()
        engine.dispose()
        app.close()


def _exit_with_parent(parent: int) -> None:
    """Leave at once if the parent goes (a blocked COPY would not notice the pipe)."""

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            threading.Event().wait(1.0)

    threading.Thread(target=watch, name="rebuild-parent-watch", daemon=True).start()

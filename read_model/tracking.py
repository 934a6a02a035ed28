"""Rows of `projection_tracking`: how far each projection has got, and how it is doing.

Two things say how far: the `LogPosition` pair the runner resumes from (every event at or
before it, in the order the log is read, has been processed, including those the
projection ignores), and `position`, the newest store position (notification id) passed,
which clients see. The row is written in the same transaction as the rows the projection
derived from those events, which is what makes a batch count exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Select, Update, delete, func, insert, select, true, update

from read_model.positioned_cache import Stamp
from read_model.tables import projection_tracking as tracking
from read_model.upserts import insert_missing
from read_model.values import utc

STATE_OK = "ok"
STATE_FAILED = "failed"
FIRST_VERSION = 1


class LogPosition(NamedTuple):
    """A place in the order projections read the log: `(tx_id, event_id)`, compared as a pair.

    On PostgreSQL `tx_id` is the id of the transaction that wrote the event and `event_id`
    its notification id; on SQLite (one writer at a time, ids commit in order) `tx_id` is
    always 0. A projection at P has processed every event at or before P. `(t, 0)` is just
    before every event transaction `t` wrote: the runner stands there when it has read
    everything below a watermark `t`.
    """

    tx_id: int
    event_id: int


LOG_START = LogPosition(0, 0)


@dataclass(frozen=True)
class Tracking:
    """One version of one projection: its position, and the error that stopped it if any.

    `log_position` is None in a row written before the pair was tracked (the runner works
    it out from `position`).
    """

    name: str
    version: int
    is_active: bool
    position: int
    log_position: LogPosition | None
    state: str
    last_error: str | None
    error_position: int | None
    failed_at: datetime | None
    updated_at: datetime


def _tracking(row: Any) -> Tracking:
    return Tracking(
        name=row.name,
        version=row.version,
        is_active=bool(row.is_active),
        position=int(row.position),
        log_position=(
            None
            if row.log_tx_id is None or row.log_event_id is None
            else LogPosition(int(row.log_tx_id), int(row.log_event_id))
        ),
        state=row.state,
        last_error=row.last_error,
        error_position=row.error_position,
        failed_at=utc(row.failed_at) if row.failed_at else None,
        updated_at=utc(row.updated_at),
    )


def ensure_tracking(connection: Connection, name: str, version: int = FIRST_VERSION) -> None:
    """Start tracking a projection at position 0 unless it is tracked already.

    The first version is the active one; a rebuild's later version starts inactive.
    """
    insert_missing(
        connection,
        tracking,
        [
            {
                "name": name,
                "version": version,
                "is_active": version == FIRST_VERSION,
                "position": 0,
                "log_tx_id": LOG_START.tx_id,
                "log_event_id": LOG_START.event_id,
                "state": STATE_OK,
                "updated_at": datetime.now(UTC),
            }
        ],
    )


def get_tracking(connection: Connection, name: str, version: int | None = None) -> Tracking | None:
    """The given version of a projection, or its active one."""
    query = select(tracking).where(tracking.c.name == name)
    if version is None:
        query = query.where(tracking.c.is_active.is_(True))
    else:
        query = query.where(tracking.c.version == version)
    # At most one row either way: the key, or the one active row per name (a unique index).
    row = connection.execute(query).one_or_none()
    return _tracking(row) if row else None


def get_versions(connection: Connection, name: str) -> list[Tracking]:
    """Every tracked version of a projection, oldest first."""
    rows = connection.execute(
        select(tracking).where(tracking.c.name == name).order_by(tracking.c.version)
    )
    return [_tracking(row) for row in rows]


def start_version(connection: Connection, name: str, version: int) -> None:
    """Track a version a rebuild builds: inactive, at position 0 (reset if it was there)."""
    connection.execute(
        delete(tracking).where(tracking.c.name == name, tracking.c.version == version)
    )
    connection.execute(
        insert(tracking).values(
            name=name,
            version=version,
            is_active=False,
            position=0,
            log_tx_id=LOG_START.tx_id,
            log_event_id=LOG_START.event_id,
            state=STATE_OK,
            updated_at=datetime.now(UTC),
        )
    )


def touch_tracking(connection: Connection, name: str, version: int) -> bool:
    """Write a version's row without changing it: on SQLite the first write of a
    transaction takes the database's write lock. False when there is no such row."""
    result = connection.execute(
        update(tracking)
        .where(tracking.c.name == name, tracking.c.version == version)
        .values(updated_at=tracking.c.updated_at)
    )
    return bool(result.rowcount)


def switch_active(connection: Connection, name: str, old: int, new: int) -> None:
    """Make `new` the serving version instead of `old` (in the caller's transaction).

    Two statements, old first: the unique index on active rows is checked row by row.
    """
    now = datetime.now(UTC)
    connection.execute(
        update(tracking)
        .where(tracking.c.name == name, tracking.c.version == old)
        .values(is_active=False, updated_at=now)
    )
    connection.execute(
        update(tracking)
        .where(tracking.c.name == name, tracking.c.version == new)
        .values(is_active=True, updated_at=now)
    )


def forget_version(connection: Connection, name: str, version: int) -> None:
    """Stop tracking a version (its tables are dropped, or never built)."""
    connection.execute(
        delete(tracking).where(
            tracking.c.name == name,
            tracking.c.version == version,
            tracking.c.is_active.is_(False),
        )
    )


def active_version(connection: Connection, name: str) -> int:
    """The version of a projection's tables that serves reads (the first one by default)."""
    found = get_tracking(connection, name)
    return found.version if found else FIRST_VERSION


def projection_position(connection: Connection, name: str) -> int:
    """The position of the serving version of a projection (0 before its first batch)."""
    found = connection.execute(
        select(tracking.c.position).where(tracking.c.name == name, tracking.c.is_active.is_(True))
    ).scalar_one_or_none()
    return int(found or 0)


def serving_stamp_query(name: str) -> Select[Any]:
    """The serving version of `name` and its position, as one row (none before tracking)."""
    return select(tracking.c.version, tracking.c.position).where(
        tracking.c.name == name, tracking.c.is_active.is_(True)
    )


def serving_stamp(connection: Connection, name: str) -> Stamp | None:
    """Which state of `name`'s rows a read now sees (None when it is not tracked yet)."""
    row = connection.execute(serving_stamp_query(name)).first()
    return Stamp(int(row.version), int(row.position)) if row else None


def projection_progress(connection: Connection, name: str) -> tuple[int, LogPosition | None]:
    """The serving version's position and log position, in one read.

    `(0, LOG_START)` before its first batch; the log position is None in a row written
    before the pair was tracked.
    """
    row = connection.execute(
        select(tracking.c.position, tracking.c.log_tx_id, tracking.c.log_event_id).where(
            tracking.c.name == name, tracking.c.is_active.is_(True)
        )
    ).first()
    if row is None:
        return 0, LOG_START
    if row.log_tx_id is None or row.log_event_id is None:
        return int(row.position), None
    return int(row.position), LogPosition(int(row.log_tx_id), int(row.log_event_id))


def all_tracking(connection: Connection) -> list[Tracking]:
    """Every tracked projection version, by name then version."""
    rows = connection.execute(select(tracking).order_by(tracking.c.name, tracking.c.version))
    return [_tracking(row) for row in rows]


def lock_tracking(
    connection: Connection, name: str, version: int, *, idle_timeout_seconds: int
) -> Tracking | None:
    """Lock a version's tracking row until the transaction ends; the row as committed now.

    PostgreSQL: one statement, `SELECT ... FOR UPDATE`, which waits for a runner holding
    the row and then reads the version that runner committed (READ COMMITTED re-reads a
    row it waited for), so the lock and the read are one round trip. It also lifts
    `idle_in_transaction_session_timeout` for this transaction alone (a batch whose
    handlers are slow must not be killed half way). None when there is no such row (and
    nothing is locked). SQLite: a write that changes nothing takes the database's write
    lock, the transaction's first.
    """
    if connection.dialect.name != "postgresql":
        touch_tracking(connection, name, version)
        return get_tracking(connection, name, version)
    settings = select(
        func.set_config(
            "idle_in_transaction_session_timeout", f"{idle_timeout_seconds}s", True
        ).label("timeout")
    ).cte("settings")
    row = connection.execute(
        select(tracking, settings.c.timeout)
        .select_from(tracking.join(settings, true()))
        .where(tracking.c.name == name, tracking.c.version == version)
        .with_for_update(of=tracking)
    ).one_or_none()
    return _tracking(row) if row else None


def _advanced(position: int, log_position: LogPosition) -> dict[str, Any]:
    """The tracking row's values after a successful batch: new position, no error."""
    return {
        "position": position,
        "log_tx_id": log_position.tx_id,
        "log_event_id": log_position.event_id,
        "state": STATE_OK,
        "last_error": None,
        "error_position": None,
        "failed_at": None,
        "updated_at": datetime.now(UTC),
    }


def _execute_advance(connection: Connection, moved: Update, notify: tuple[str, str] | None) -> bool:
    """Run an advance; on PostgreSQL with `notify`, NOTIFY in the same statement, and only
    if a row moved (delivered at commit). True when a row moved."""
    if notify is None or connection.dialect.name != "postgresql":
        return bool(connection.execute(moved).rowcount)
    channel, payload = notify
    done = moved.returning(tracking.c.version).cte("moved")
    return bool(
        connection.execute(select(func.pg_notify(channel, payload)).select_from(done)).all()
    )


def advance_from(
    connection: Connection,
    name: str,
    version: int,
    *,
    expected: tuple[int, LogPosition | None],
    active: bool,
    position: int,
    log_position: LogPosition,
    notify: tuple[str, str] | None = None,
) -> bool:
    """Record a successful batch only if the row still says what the batch started from
    (`expected`: position and log position) and the version still serves (`active`) or
    not: compare-and-set, one statement with the NOTIFY. False (nothing written) when
    another runner, or a switch, moved first: the caller rolls its batch back.

    Under the version's lock only a switch can intervene; without it this alone would still
    keep a batch from counting twice (the UPDATE waits for a concurrent one and re-checks).
    """
    expected_position, expected_log = expected
    conditions = [
        tracking.c.name == name,
        tracking.c.version == version,
        tracking.c.is_active.is_(active),
        tracking.c.position == expected_position,
    ]
    if expected_log is None:
        conditions += [tracking.c.log_tx_id.is_(None), tracking.c.log_event_id.is_(None)]
    else:
        conditions += [
            tracking.c.log_tx_id == expected_log.tx_id,
            tracking.c.log_event_id == expected_log.event_id,
        ]
    moved = update(tracking).where(*conditions).values(**_advanced(position, log_position))
    return _execute_advance(connection, moved, notify)


def advance(
    connection: Connection,
    name: str,
    version: int,
    position: int,
    log_position: LogPosition,
    *,
    notify: tuple[str, str] | None = None,
) -> None:
    """Record a successful batch: a new position, and no error any more.

    `notify` (PostgreSQL): a (channel, payload) NOTIFYed in the same statement, delivered
    at commit.
    """
    moved = (
        update(tracking)
        .where(tracking.c.name == name, tracking.c.version == version)
        .values(**_advanced(position, log_position))
    )
    _execute_advance(connection, moved, notify)


def record_failure(
    connection: Connection,
    name: str,
    version: int,
    *,
    position: int,
    log_position: LogPosition,
    error_position: int,
    error: str,
) -> None:
    """Stop at the event that failed: the position just before it, and the error."""
    now = datetime.now(UTC)
    connection.execute(
        update(tracking)
        .where(tracking.c.name == name, tracking.c.version == version)
        .values(
            position=position,
            log_tx_id=log_position.tx_id,
            log_event_id=log_position.event_id,
            state=STATE_FAILED,
            last_error=error,
            error_position=error_position,
            failed_at=now,
            updated_at=now,
        )
    )

"""Rows of `projection_rebuild`: each blue/green rebuild's state, owner and progress.

A rebuild is running from its insertion until `finished_at` is set (done, cancelled or
failed); a unique index on unfinished rows makes one running rebuild per projection a
rule of the database, whichever process asks. Every change is a short transaction of its
own: a long one would hold the commit watermark back for every live projection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from read_model.tables import projection_rebuild as rebuilds
from read_model.tables import projection_tracking as tracking
from read_model.values import utc

PENDING = "pending"
LOADING = "loading"
INDEXING = "indexing"
CATCHING_UP = "catching_up"
SWITCHING = "switching"
DROPPING_OLD = "dropping_old"
DONE = "done"
CANCELLED = "cancelled"
FAILED = "failed"
RUNNING_STATES = (PENDING, LOADING, INDEXING, CATCHING_UP, SWITCHING, DROPPING_OLD)
FINISHED_STATES = (DONE, CANCELLED, FAILED)


class RebuildRunningError(Exception):
    """A rebuild of this projection is running already (one at a time)."""

    def __init__(self, name: str, running: Rebuild | None) -> None:
        version = f" (version {running.version}, {running.state})" if running else ""
        super().__init__(f"a rebuild of {name} is already running{version}")
        self.name = name
        self.running = running


@dataclass(frozen=True)
class Rebuild:
    """One rebuild as its row says: what it builds, where it is, how it ended."""

    name: str
    version: int
    from_version: int
    state: str
    cancel_requested: bool
    owner: str | None
    heartbeat_at: datetime | None
    requested_by: str | None
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    target_position: int
    position: int
    events_applied: int
    attempts: int
    last_error: str | None
    error_position: int | None

    @property
    def running(self) -> bool:
        return self.finished_at is None


def _rebuild(row: Any) -> Rebuild:
    return Rebuild(
        name=row.name,
        version=row.version,
        from_version=row.from_version,
        state=row.state,
        cancel_requested=bool(row.cancel_requested),
        owner=row.owner,
        heartbeat_at=utc(row.heartbeat_at) if row.heartbeat_at else None,
        requested_by=row.requested_by,
        started_at=utc(row.started_at),
        updated_at=utc(row.updated_at),
        finished_at=utc(row.finished_at) if row.finished_at else None,
        target_position=int(row.target_position),
        position=int(row.position),
        events_applied=int(row.events_applied),
        attempts=int(row.attempts),
        last_error=row.last_error,
        error_position=row.error_position,
    )


def next_version(connection: Connection, name: str) -> int:
    """A version number never used by this projection: tables, tracking or history."""
    tracked = connection.execute(
        select(func.max(tracking.c.version)).where(tracking.c.name == name)
    ).scalar_one()
    built = connection.execute(
        select(func.max(rebuilds.c.version)).where(rebuilds.c.name == name)
    ).scalar_one()
    return max(int(tracked or 1), int(built or 0)) + 1


def begin_rebuild(
    connection: Connection,
    *,
    name: str,
    version: int,
    from_version: int,
    requested_by: str | None,
) -> Rebuild:
    """Record a new rebuild as pending; `RebuildRunningError` if one is running already.

    Run it in a transaction of its own: the refused insert aborts it.
    """
    now = datetime.now(UTC)
    try:
        connection.execute(
            insert(rebuilds).values(
                name=name,
                version=version,
                from_version=from_version,
                state=PENDING,
                cancel_requested=False,
                requested_by=requested_by,
                started_at=now,
                updated_at=now,
                target_position=0,
                position=0,
                events_applied=0,
                attempts=0,
            )
        )
    except IntegrityError as error:
        raise RebuildRunningError(name, None) from error
    found = get_rebuild(connection, name, version)
    assert found is not None
    return found


def get_rebuild(connection: Connection, name: str, version: int) -> Rebuild | None:
    row = connection.execute(
        select(rebuilds).where(rebuilds.c.name == name, rebuilds.c.version == version)
    ).one_or_none()
    return _rebuild(row) if row else None


def running_rebuild(connection: Connection, name: str) -> Rebuild | None:
    """The projection's unfinished rebuild, if any (at most one: a unique index)."""
    row = connection.execute(
        select(rebuilds).where(rebuilds.c.name == name, rebuilds.c.finished_at.is_(None))
    ).one_or_none()
    return _rebuild(row) if row else None


def latest_rebuilds(connection: Connection) -> dict[str, Rebuild]:
    """Each projection's running rebuild, or else its most recent one."""
    found: dict[str, Rebuild] = {}
    rows = connection.execute(
        select(rebuilds).order_by(rebuilds.c.name, rebuilds.c.started_at, rebuilds.c.version)
    )
    for row in rows:
        rebuild = _rebuild(row)
        current = found.get(rebuild.name)
        if current is None or not current.running:
            found[rebuild.name] = rebuild
    return found


def update_rebuild(connection: Connection, name: str, version: int, **values: Any) -> None:
    """Change a rebuild's row (and its `updated_at`)."""
    values.setdefault("updated_at", datetime.now(UTC))
    connection.execute(
        update(rebuilds)
        .where(rebuilds.c.name == name, rebuilds.c.version == version)
        .values(**values)
    )


def claim_rebuild(
    connection: Connection,
    name: str,
    version: int,
    owner: str,
    *,
    unless_fresh: datetime | None = None,
) -> bool:
    """Take a running rebuild on: owner, heartbeat, one more attempt. With `unless_fresh`,
    only if nobody owns it or its owner's heartbeat is older than that (False otherwise)."""
    now = datetime.now(UTC)
    query = update(rebuilds).where(
        rebuilds.c.name == name,
        rebuilds.c.version == version,
        rebuilds.c.finished_at.is_(None),
    )
    if unless_fresh is not None:
        query = query.where(
            or_(
                rebuilds.c.owner.is_(None),
                rebuilds.c.heartbeat_at.is_(None),
                rebuilds.c.heartbeat_at < unless_fresh,
            )
        )
    result = connection.execute(
        query.values(
            owner=owner, heartbeat_at=now, updated_at=now, attempts=rebuilds.c.attempts + 1
        )
    )
    return bool(result.rowcount)


def request_cancel(connection: Connection, name: str) -> Rebuild | None:
    """Ask the running rebuild of `name` to stop; None when none runs."""
    connection.execute(
        update(rebuilds)
        .where(rebuilds.c.name == name, rebuilds.c.finished_at.is_(None))
        .values(cancel_requested=True, updated_at=datetime.now(UTC))
    )
    return running_rebuild(connection, name)


def finish_rebuild(
    connection: Connection,
    name: str,
    version: int,
    state: str,
    *,
    error: str | None = None,
    error_position: int | None = None,
) -> None:
    """Record how a rebuild ended; it no longer counts as running."""
    now = datetime.now(UTC)
    connection.execute(
        update(rebuilds)
        .where(rebuilds.c.name == name, rebuilds.c.version == version)
        .values(
            state=state,
            finished_at=now,
            updated_at=now,
            last_error=error,
            error_position=error_position,
        )
    )

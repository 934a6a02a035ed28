"""How each projection is doing: position, head, lag in events and seconds, state, error,
and the open transaction that holds it back, if one does for long.

One function serves `bookstore projections status`, `GET /projections` and `/metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from projections.event_log import OpenTransaction
from projections.rebuild import RebuildStatus
from projections.runner import Runner
from read_model.tracking import FIRST_VERSION, LOG_START, STATE_FAILED, LogPosition, get_tracking

STATE_UP_TO_DATE = "up_to_date"
STATE_CATCHING_UP = "catching_up"
# Name the transaction holding a projection back once it has been open this long: a
# writer's own transaction lasts milliseconds, a batch of a projection well under one.
HELD_BACK_THRESHOLD_SECONDS = 5.0


@dataclass(frozen=True)
class ProjectionStatus:
    """One projection as an operator sees it.

    `position` is the newest store position it has passed; `lag_events` counts the events
    beyond where it stands in the log (on SQLite: store positions between it and the head,
    which ids' rare gaps may overstate); `lag_seconds` is how long the next event it has
    not processed has been waiting (0 when caught up). `state` is `up_to_date`,
    `catching_up` or `failed` (then `last_error` says why and `error_position` where).
    `held_back_by` names the transaction that keeps committed events out of its reach
    (PostgreSQL: the oldest one that has written anything, anywhere in the cluster) once it
    has been open `HELD_BACK_THRESHOLD_SECONDS`; it is left out of `as_dict` when None.
    `version` is the serving version of its tables; `rebuild` its running blue/green
    rebuild, or else its last one (None: never rebuilt).
    """

    name: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    state: str
    last_error: str | None
    error_position: int | None
    held_back_by: OpenTransaction | None = None
    version: int = FIRST_VERSION
    rebuild: RebuildStatus | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: `held_back_by` only when set, its times as ISO 8601 strings."""
        found = asdict(self)
        del found["held_back_by"]
        if self.held_back_by is not None:
            found["held_back_by"] = self.held_back_by.as_dict()
        found["rebuild"] = self.rebuild.as_dict() if self.rebuild is not None else None
        return found


def _waiting_since(runner: Runner, after: LogPosition) -> datetime | None:
    """When the next event beyond `after` was recorded."""
    found = runner.log.first_after(after)
    if found is None:
        return None
    event: Any = runner.app.mapper.to_domain_event(found)
    timestamp: datetime = event.timestamp
    return timestamp


def projection_status(
    runner: Runner,
    name: str,
    *,
    held_back_threshold: float = HELD_BACK_THRESHOLD_SECONDS,
    rebuild: RebuildStatus | None = None,
) -> ProjectionStatus:
    """The status of one projection (its serving version)."""
    runner.projection(name)
    with runner.engine.connect() as connection:
        tracking = get_tracking(connection, name)
    position = tracking.position if tracking else 0
    log_position = LOG_START
    if tracking is not None:
        log_position = tracking.log_position or (
            runner.log.locate(position) or LogPosition(0, position)
        )
    backlog = runner.log.backlog(log_position)
    lag_seconds = 0.0
    held_back_by = None
    if backlog.events:
        since = _waiting_since(runner, log_position)
        if since is not None:
            lag_seconds = max(0.0, (datetime.now(UTC) - since).total_seconds())
        if backlog.held_back:
            oldest = runner.log.oldest_open_transaction()
            if oldest is not None and oldest.age_seconds >= held_back_threshold:
                held_back_by = oldest
    if tracking is not None and tracking.state == STATE_FAILED:
        state = STATE_FAILED
    else:
        state = STATE_CATCHING_UP if backlog.events else STATE_UP_TO_DATE
    return ProjectionStatus(
        name=name,
        position=position,
        head=backlog.head,
        lag_events=backlog.events,
        lag_seconds=round(lag_seconds, 3),
        state=state,
        last_error=tracking.last_error if tracking else None,
        error_position=tracking.error_position if tracking else None,
        held_back_by=held_back_by,
        version=tracking.version if tracking else FIRST_VERSION,
        rebuild=rebuild,
    )


def projection_statuses(
    runner: Runner, rebuilds: Mapping[str, RebuildStatus] | None = None
) -> list[ProjectionStatus]:
    """The status of every projection, in the runner's order, with its rebuild if given."""
    found = rebuilds or {}
    return [projection_status(runner, name, rebuild=found.get(name)) for name in runner.names]

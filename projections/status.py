"""How each projection is doing: position, head, lag in events and seconds, state, error.

One function serves `bookstore projections status`, `GET /projections` and `/metrics`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from projections.runner import Runner
from read_model.tracking import STATE_FAILED, get_tracking

STATE_UP_TO_DATE = "up_to_date"
STATE_CATCHING_UP = "catching_up"


@dataclass(frozen=True)
class ProjectionStatus:
    """One projection as an operator sees it.

    `lag_events` counts store positions between the projection and the head (ids can have
    rare gaps, so it may overstate by those); `lag_seconds` is how long the oldest event it
    has not processed has been waiting (0 when caught up). `state` is `up_to_date`,
    `catching_up` or `failed` (then `last_error` says why and `error_position` where).
    """

    name: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    state: str
    last_error: str | None
    error_position: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _oldest_waiting_since(runner: Runner, position: int, head: int) -> datetime | None:
    """When the first event after `position` was recorded."""
    found = runner.app.recorder.select_notifications(
        position, 1, stop=head, inclusive_of_start=False
    )
    if not found:
        return None
    event: Any = runner.app.mapper.to_domain_event(found[0])
    timestamp: datetime = event.timestamp
    return timestamp


def projection_status(runner: Runner, name: str) -> ProjectionStatus:
    """The status of one projection (its serving version)."""
    runner.projection(name)
    head = runner.head()
    with runner.engine.connect() as connection:
        tracking = get_tracking(connection, name)
    position = tracking.position if tracking else 0
    lag_events = max(0, head - position)
    lag_seconds = 0.0
    if lag_events:
        since = _oldest_waiting_since(runner, position, head)
        if since is not None:
            lag_seconds = max(0.0, (datetime.now(UTC) - since).total_seconds())
    if tracking is not None and tracking.state == STATE_FAILED:
        state = STATE_FAILED
    else:
        state = STATE_CATCHING_UP if lag_events else STATE_UP_TO_DATE
    return ProjectionStatus(
        name=name,
        position=position,
        head=head,
        lag_events=lag_events,
        lag_seconds=round(lag_seconds, 3),
        state=state,
        last_error=tracking.last_error if tracking else None,
        error_position=tracking.error_position if tracking else None,
    )


def projection_statuses(runner: Runner) -> list[ProjectionStatus]:
    """The status of every projection, in the runner's order."""
    return [projection_status(runner, name) for name in runner.names]

"""The read model as it was at a point of the log, built into a database of its own.

`replay_as_of` runs the normal runner (`runner.py`) and the projections' own handlers over
the event store into a separate, already migrated read database, but lets each projection
apply only the events up to the point asked for: a position (every event at or before
it) or a time (every event recorded at or before it). What lies beyond is read and
skipped, so the tracking rows end where the log ended; they are then set to the last
position applied, so `projections status` against that database says "as of P". The
result is a snapshot for analysis: point no runner at it afterwards, it would carry on
from the log's end, not from P.

Nothing here touches the live read database: the caller gives the target engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventsourcing.application import Application
from sqlalchemy import Connection, Engine, update

from projections.base import Projection
from projections.events import Positioned
from projections.runner import DEFAULT_BATCH_SIZE, BatchResult, Runner
from read_model.tables import projection_tracking

# Called after each batch: the projection, the position it has passed, the log's head.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class AsOf:
    """A point of the log: a store position, a time, or both (an event must meet both)."""

    position: int | None = None
    time: datetime | None = None

    def includes(self, item: Positioned) -> bool:
        if self.position is not None and item.position > self.position:
            return False
        return self.time is None or item.event.timestamp <= self.time

    def describe(self) -> str:
        parts = []
        if self.position is not None:
            parts.append(f"position {self.position}")
        if self.time is not None:
            parts.append(self.time.isoformat())
        return " and ".join(parts) or "the head"


@dataclass
class _Applied:
    """How many events a bounded projection applied, and the newest one's position."""

    events: int = 0
    last_position: int = 0


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did, per projection and in all."""

    as_of: AsOf
    batches: dict[str, BatchResult]
    applied: dict[str, int]
    last_position: int
    held_back: list[str] = field(default_factory=list)

    @property
    def failed(self) -> dict[str, str]:
        return {name: r.error for name, r in self.batches.items() if r.error is not None}


def bounded(projection: Projection, as_of: AsOf, applied: _Applied) -> Projection:
    """The same projection (name, tables, handlers), applying only the events `as_of` keeps.

    Made as a subclass of the projection's own class, so it is that projection in every
    other respect, its `apply` included.
    """
    cls = type(projection)

    def apply(self: Projection, connection: Connection, events: Sequence[Positioned]) -> None:
        kept = [item for item in events if as_of.includes(item)]
        if kept:
            applied.events += len(kept)
            applied.last_position = max(applied.last_position, *(i.position for i in kept))
        cls.apply(self, connection, kept)

    subclass: type[Projection] = type(f"AsOf{cls.__name__}", (cls,), {"apply": apply})
    return subclass()


def _catch_up(runner: Runner, name: str, batch_size: int, progress: Progress | None) -> BatchResult:
    """`Runner.catch_up_fully`, telling `progress` after every batch."""
    while True:
        result = runner.catch_up(name, batch_size)
        if progress is not None:
            progress(name, result.position, result.head)
        stalled = result.log_position == result.start_log_position
        if result.failed or (not result.more and (not result.held_back or stalled)):
            return result


def replay_as_of(
    app: Application[Any],
    target: Engine,
    projections: Iterable[Projection],
    as_of: AsOf,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> ReplayResult:
    """Build every projection into `target` (migrated, empty) as it was at `as_of`."""
    counters: dict[str, _Applied] = {}
    chosen: list[Projection] = []
    for projection in projections:
        counters[projection.name] = _Applied()
        chosen.append(bounded(projection, as_of, counters[projection.name]))
    runner = Runner(app, target, chosen)
    batches = {
        projection.name: _catch_up(runner, projection.name, batch_size, progress)
        for projection in chosen
    }
    last = max((counter.last_position for counter in counters.values()), default=0)
    if as_of.position is not None:
        # Events the projections ignore count too: the state is the one at that position.
        last = max(last, min(as_of.position, runner.head()))
    with target.begin() as connection:
        connection.execute(
            update(projection_tracking)
            .where(projection_tracking.c.name.in_(list(counters)))
            .values(position=last)
        )
    return ReplayResult(
        as_of=as_of,
        batches=batches,
        applied={name: counter.events for name, counter in counters.items()},
        last_position=last,
        held_back=[name for name, r in batches.items() if r.held_back],
    )

"""What a projection is: a name, the event types it handles, a handler per type, its tables.

A handler takes the row as the batch has made it so far (None when there is none) and the
event, and returns the row's new state (None: no row). Each row keeps the version of the
last event applied to it, and an event at or below that version is skipped, so applying an
event twice changes nothing: handlers are idempotent upserts even without the runner's
exactly-once guarantee.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from sqlalchemy import Connection, Table

from projections.events import Positioned
from projections.rows import ChildRows, Row, RowBuffer
from read_model.versions import logical_name


class Batch:
    """What a handler may write besides its own row: rows of child tables.

    Handlers name a child table by its stable table (`order_line`); the batch writes to
    whichever version's copy it was given (`read_model.versions`).
    """

    def __init__(self, child_tables: Sequence[Table]) -> None:
        self.children = {logical_name(table): ChildRows(table) for table in child_tables}

    def add_children(self, table: Table, rows: list[Row]) -> None:
        self.children[logical_name(table)].add(rows)


Handler = Callable[[Row | None, Any, Batch], Row | None]


class HandlerError(Exception):
    """A handler (or the decoding of a stored event) failed on one event of a batch."""

    def __init__(self, index: int, position: int, cause: BaseException) -> None:
        super().__init__(f"event at position {position}: {cause!r}")
        self.index = index
        self.position = position
        self.cause = cause


class Projection:
    """Builds one read table (keyed by aggregate id) and its child tables from events."""

    name: ClassVar[str]
    table: ClassVar[Table]
    child_tables: ClassVar[tuple[Table, ...]] = ()

    def __init__(self) -> None:
        self.handlers: Mapping[str, Handler] = self.handled()
        # The tables `apply` writes: the stable ones, or a rebuild's version (`bound`).
        self._writes: tuple[Table, tuple[Table, ...]] | None = None

    def handled(self) -> Mapping[str, Handler]:
        """The handler of each stored topic this projection reads."""
        raise NotImplementedError

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(self.handlers)

    @property
    def tables(self) -> tuple[Table, ...]:
        """Every table this projection owns (what a rebuild rebuilds)."""
        return (self.table, *self.child_tables)

    def bound(self, tables: Mapping[str, Table]) -> Projection:
        """This projection writing to other copies of its tables (by stable name): a
        rebuild's version N+1, built beside the serving tables."""
        twin = copy.copy(self)
        twin._writes = (
            tables[self.table.name],
            tuple(tables[child.name] for child in self.child_tables),
        )
        return twin

    @property
    def write_tables(self) -> tuple[Table, tuple[Table, ...]]:
        """The main table and the child tables `apply` writes to."""
        return self._writes or (self.table, self.child_tables)

    def apply(self, connection: Connection, events: Sequence[Positioned]) -> None:
        """Apply events in order to the rows they touch, then write those rows back."""
        table, child_tables = self.write_tables
        rows = RowBuffer(table)
        batch = Batch(child_tables)
        # An aggregate whose first event here is its first ever (version 1) has no row
        # yet: only the others are looked up (a batch of registrations costs no SELECT).
        first: dict[Any, int] = {}
        for item in events:
            first.setdefault(item.event.originator_id, item.event.originator_version)
        rows.load(connection, (key for key, version in first.items() if version > 1))
        for index, item in enumerate(events):
            try:
                self._apply_one(rows, batch, item)
            except Exception as error:
                raise HandlerError(index, item.position, error) from error
        rows.flush(connection)
        for children in batch.children.values():
            children.flush(connection)

    def _apply_one(self, rows: RowBuffer, batch: Batch, item: Positioned) -> None:
        event = item.event
        key = event.originator_id
        row = rows.get(key)
        if row is not None and row["version"] >= event.originator_version:
            return  # applied already
        new = self.handlers[item.topic](None if row is None else dict(row), event, batch)
        if new is None and row is None:
            return
        if new is not None:
            new.update(id=key, version=event.originator_version, updated_at=event.timestamp)
        rows.put(key, new)

"""The library's repository, loading several aggregates and cold ones in fewer round trips.

A command such as `place_order` loads a cart and then each of its books. With the library's
repository that is one statement per cached book (fast-forwarding it) and two for an
aggregate not cached yet (its latest snapshot, then the events after it). When the store
can (`BatchReads`, which the PostgreSQL recorder in `adapters/event_recorder.py` offers),
this repository fast-forwards all the cached aggregates of a command in one statement and
reads a cold aggregate's snapshot and events in one. Stores that cannot (SQLite, memory)
are read the library's way.

After every save the saved events are applied to the cached aggregates they continue
(`remember`), so this process's own writes never leave its cache behind: the next
fast-forward finds nothing to read back and decode. `peek` lets a command see what a
cached aggregate refers to (a cart's books) and so fast-forward it and those together.

What the library guarantees is kept: a cached aggregate is fast-forwarded under a lock
(one of a fixed set of stripes here, taken in stripe order, so two batches cannot
deadlock), and the command gets a deep copy, so a command that fails leaves the cache
untouched. The copy is `copy_aggregate`: `deepcopy`'s generic machinery was the largest
single item of a command's CPU once the reads were batched, and an aggregate's attributes
are mostly immutable values that need no copying at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from copy import deepcopy
from datetime import datetime
from decimal import Decimal
from itertools import chain
from threading import Lock
from typing import Any, Protocol, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Repository, project_aggregate
from eventsourcing.domain import Aggregate, CanMutateProtocol
from eventsourcing.persistence import AggregateRecorder, StoredEvent

A = TypeVar("A")
V = TypeVar("V")
# Locks guarding cached aggregates against concurrent fast-forwards (see `_use_fastforward_lock`).
LOCK_STRIPES = 64


class BatchReads(Protocol):
    """What a recorder offers to save round trips (see `adapters/event_recorder.py`)."""

    def select_events_after(self, versions: Mapping[UUID, int]) -> Sequence[StoredEvent]:
        """Each aggregate's events newer than its given version, per aggregate in order."""

    def select_latest(
        self, originator_id: UUID, snapshots: AggregateRecorder
    ) -> tuple[StoredEvent | None, Sequence[StoredEvent]] | None:
        """The latest snapshot and the events after it; None if it cannot read `snapshots`."""


def project_events(aggregate: A | None, domain_events: Iterable[Any]) -> A | None:
    """The library's `project_aggregate` without its per-event protocol `isinstance`
    assertion (a slow check against a runtime Protocol, a few percent of a command's CPU):
    every event of an `Aggregate` has `mutate`."""
    for domain_event in domain_events:
        aggregate = cast(CanMutateProtocol[Any], domain_event).mutate(aggregate)
    return aggregate


# Values a deep copy may share: immutable, and holding nothing mutable.
_IMMUTABLE: frozenset[type] = frozenset(
    {str, int, float, bool, bytes, Decimal, UUID, datetime, type(None)}
)


def copy_aggregate(aggregate: A) -> A:
    """A deep copy of an aggregate, sharing only its immutable attribute values.

    The same result as `copy.deepcopy` (mutable attributes, such as a cart's lines or the
    pending events, are deep-copied, with one memo so shared references stay shared),
    without its generic reduce protocol for the aggregate and each scalar in it.
    """
    clone = object.__new__(type(aggregate))
    memo: dict[int, Any] = {id(aggregate): clone}
    clone.__dict__.update(
        {
            name: value if type(value) in _IMMUTABLE else deepcopy(value, memo)
            for name, value in aggregate.__dict__.items()
        }
    )
    return clone


def _same(aggregate: A) -> A:
    return aggregate


class BatchingRepository(Repository[UUID]):
    """`Repository` with `get_many`, and a cold load in one statement when the store can."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        recorder = getattr(self.event_store, "recorder", None)
        can_batch = callable(getattr(recorder, "select_events_after", None)) and callable(
            getattr(recorder, "select_latest", None)
        )
        self._reads: BatchReads | None = cast(BatchReads, recorder) if can_batch else None
        self._stripes = [Lock() for _ in range(LOCK_STRIPES)]

    def get(
        self,
        aggregate_id: UUID,
        *,
        version: int | None = None,
        projector_func: Any = project_aggregate,
        fastforward_skipping: bool = False,
        deepcopy_from_cache: bool = True,
    ) -> Any:
        """The library's `get`, with the copy from the cache made by `copy_aggregate`."""
        aggregate = super().get(
            aggregate_id,
            version=version,
            projector_func=projector_func,
            fastforward_skipping=fastforward_skipping,
            deepcopy_from_cache=False,
        )
        if self.cache and version is None and deepcopy_from_cache and self.deepcopy_from_cache:
            aggregate = copy_aggregate(aggregate)
        return aggregate

    def _reconstruct_aggregate(
        self, aggregate_id: UUID, version: int | None, projector_func: Any
    ) -> Any:
        snapshots = self.snapshot_store
        if version is not None or self._reads is None or snapshots is None:
            return super()._reconstruct_aggregate(aggregate_id, version, projector_func)
        found = self._reads.select_latest(aggregate_id, snapshots.recorder)
        if found is None:
            return super()._reconstruct_aggregate(aggregate_id, version, projector_func)
        snapshot, stored_events = found
        to_domain = self.event_store.mapper.to_domain_event
        head = [to_domain(snapshot)] if snapshot is not None else []
        aggregate = projector_func(None, chain(head, map(to_domain, stored_events)))
        if aggregate is None:
            msg = f"Aggregate {aggregate_id!r} version None not found."
            raise AggregateNotFoundError(msg)
        return aggregate

    def get_many(self, aggregate_ids: Iterable[UUID]) -> dict[UUID, Aggregate]:
        """Each aggregate as `get` would return it (missing ones left out): the cached ones
        fast-forwarded together in one statement, the others reconstructed one by one."""
        ids = list(dict.fromkeys(aggregate_ids))
        if self._reads is None or not self.cache or not self.fastforward or len(ids) < 2:
            return {i: a for i in ids if (a := self._get_or_none(i)) is not None}
        cached: dict[UUID, Aggregate] = {}
        for aggregate_id in ids:
            try:
                cached[aggregate_id] = cast(Aggregate, self.cache.get(aggregate_id))
            except KeyError:
                continue
        found = self._fast_forward(cached) if cached else {}
        for aggregate_id in ids:
            if aggregate_id not in found and (a := self._get_or_none(aggregate_id)):
                found[aggregate_id] = a
        return {i: found[i] for i in ids if i in found}

    def peek(self, aggregate_id: UUID, view: Callable[[Any], V]) -> V | None:
        """`view` of the cached aggregate as it is (None if not cached): no round trip, and
        maybe behind the store, so only a guess of what to load with it."""
        if not self.cache:
            return None
        # A fast-forward changes the cached object in place.
        with self._use_fastforward_lock(aggregate_id):
            try:
                cached = self.cache.get(aggregate_id)
            except KeyError:
                return None
            return view(cached)

    def remember(self, saved_events: Sequence[Any]) -> None:
        """Just saved: each cached aggregate the save continued gets its new events applied
        (never one another thread moved meanwhile: a fast-forward brings that one), so
        the next fast-forward has none of this process's own writes to read back and
        decode. Applying the saved events costs what the command's own changes cost, and
        shares nothing with the command's objects (it changed a copy)."""
        if not self.cache:
            return
        newer: dict[UUID, list[Any]] = {}
        for domain_event in saved_events:
            newer.setdefault(domain_event.originator_id, []).append(domain_event)
        for aggregate_id, events in newer.items():
            with self._use_fastforward_lock(aggregate_id):
                try:
                    cached = cast(Aggregate, self.cache.get(aggregate_id))
                except KeyError:
                    continue
                if cached.version == events[0].originator_version - 1:
                    project_events(cached, events)

    def _use_fastforward_lock(self, aggregate_id: UUID) -> Lock:
        """One of `LOCK_STRIPES` locks, by the id's hash, instead of the library's registry
        of one lock per aggregate (a global lock and two LRU updates per use: a tenth of
        a cached command's CPU). Two aggregates may share a stripe: `_fast_forward`
        therefore takes each stripe once."""
        return self._stripes[hash(aggregate_id) % LOCK_STRIPES]

    def _disuse_fastforward_lock(self, aggregate_id: UUID) -> None:
        """Nothing to give back: the stripes are fixed."""

    def _get_or_none(self, aggregate_id: UUID) -> Aggregate | None:
        try:
            return cast(Aggregate, self.get(aggregate_id, projector_func=project_events))
        except AggregateNotFoundError:
            return None

    def _fast_forward(self, cached: dict[UUID, Aggregate]) -> dict[UUID, Aggregate]:
        """Bring cached aggregates up to date under their locks; deep copies."""
        assert self._reads is not None
        order = sorted(cached)
        # Each stripe once, in stripe order, so that two batches cannot deadlock.
        stripes = sorted({hash(i) % LOCK_STRIPES for i in order})
        locks = [self._stripes[n] for n in stripes]
        for lock in locks:
            lock.acquire()
        try:
            # Read the versions under the locks: another thread may have moved them.
            stored = self._reads.select_events_after({i: cached[i].version for i in order})
            to_domain = self.event_store.mapper.to_domain_event
            newer: dict[UUID | str, list[StoredEvent]] = {}
            for stored_event in stored:
                newer.setdefault(stored_event.originator_id, []).append(stored_event)
            for aggregate_id in order:
                events = newer.get(aggregate_id)
                if not events:
                    continue
                projected = project_events(cached[aggregate_id], map(to_domain, events))
                if projected is None:  # pragma: no cover (an aggregate never un-exists)
                    raise AggregateNotFoundError(aggregate_id)
                cached[aggregate_id] = projected
            copy = copy_aggregate if self.deepcopy_from_cache else _same
            copies = {i: copy(cached[i]) for i in order}
        finally:
            for lock in reversed(locks):
                lock.release()
        return copies

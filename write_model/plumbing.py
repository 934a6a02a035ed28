"""What every command of the application relies on, kept apart from the commands themselves.

`EventSourcedApp` owns how the library is configured, how a save is stamped and announced,
how aggregates are found, and how natural keys are claimed; `retrying_on_conflict` re-runs
a command that lost an optimistic-concurrency race. `application.py` then reads as the list
of commands and nothing else.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any, Concatenate, ParamSpec, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate, DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import IntegrityError, Recording
from eventsourcing.utils import Environment, EnvType, strtobool

from write_model.context import CommandContext
from write_model.errors import ConcurrencyError, DomainError, NotFoundError
from write_model.ids import key_id
from write_model.key_index import KeyIndex
from write_model.repository import BatchingRepository, project_events

log = logging.getLogger(__name__)

A = TypeVar("A", bound=Aggregate)
P = ParamSpec("P")
R = TypeVar("R")
App = TypeVar("App", bound="EventSourcedApp")

BASE_BACKOFF_SECONDS = 0.002

# How a command run ended, as `command_observers` hear it.
OUTCOME_OK = "ok"
OUTCOME_REJECTED = "rejected"
OUTCOME_CONFLICT = "conflict"
OUTCOME_ERROR = "error"
# Called with (command name, outcome, races lost) after every command run.
CommandObserver = Callable[[str, str, int], None]


def retrying_on_conflict(
    command: Callable[Concatenate[App, P], R],
) -> Callable[Concatenate[App, P], R]:
    """Run the whole command again when its save loses an optimistic-concurrency race.

    A lost race (`IntegrityError`: another writer saved a newer version of one of our
    aggregates, or claimed the same key first) means everything the command loaded may be
    stale, so the retry starts from the top: load, decide, save. Attempts back off with
    full jitter (up to 2 ms, doubling) so that racing writers spread out; after
    `max_attempts` the caller gets `ConcurrencyError` (HTTP 409). Any other error, domain
    or not, propagates at once. Commands must therefore do nothing outside the store that
    a second run would repeat harmfully (`_saving_with_hash` undoes its own write).

    Each run ends by telling the app's `command_observers` the command's name, how it
    ended (`ok`, `rejected`: a domain error, `conflict`: gave up racing, `error`: anything
    else) and how many races it lost on the way (metrics, kept out of the write model).
    """
    name = command.__name__

    @functools.wraps(command)
    def retried(self: App, /, *args: P.args, **kwargs: P.kwargs) -> R:
        conflicts = 0
        try:
            for attempt in range(self.max_attempts):
                try:
                    result = command(self, *args, **kwargs)
                except IntegrityError:
                    conflicts += 1
                    if attempt == self.max_attempts - 1:
                        break
                    # Jitter, not cryptography.
                    time.sleep(random.uniform(0, BASE_BACKOFF_SECONDS * 2**attempt))  # noqa: S311
                else:
                    self.observe_command(name, OUTCOME_OK, conflicts)
                    return result
        except DomainError:
            self.observe_command(name, OUTCOME_REJECTED, conflicts)
            raise
        except Exception:
            self.observe_command(name, OUTCOME_ERROR, conflicts)
            raise
        self.observe_command(name, OUTCOME_CONFLICT, conflicts)
        raise ConcurrencyError("Too many concurrent changes; please retry")

    return retried


class EventSourcedApp(Application[UUID]):
    """An `eventsourcing` application configured by its caller alone, with the helpers
    every command uses: stamped atomic saves, lookups, and unique-key claims."""

    # Cached aggregates are fast-forwarded from the store on every load (one SELECT of the
    # newer events), so the cache is safe across processes and spares replaying books.
    env = {
        "AGGREGATE_CACHE_MAXSIZE": "10000",
        "AGGREGATE_CACHE_FASTFORWARD": "y",
        # The library's locked insert unless the composition root says otherwise: it turns
        # the lock-free one on (adapters/engines.py), since projections read below a commit
        # watermark and no longer rely on the lock (projections/event_log.py).
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
    }
    # How many times `retrying_on_conflict` runs a command before giving up.
    max_attempts = 8

    def __init__(self, env: EnvType | None = None) -> None:
        super().__init__(env)
        # Called with the new head after every successful save.
        self.commit_listeners: list[Callable[[int], None]] = []
        # Called with the new head and the stored topics of the events saved (projection
        # wake-ups: only the projections that read one of those topics need waking).
        self.commit_topic_listeners: list[Callable[[int, frozenset[str]], None]] = []
        # Told how each command ended (metrics); see `retrying_on_conflict`.
        self.command_observers: list[CommandObserver] = []

    def observe_command(self, name: str, outcome: str, conflicts: int) -> None:
        """Tell the observers how a command ended; a failing observer never fails it."""
        for observer in self.command_observers:
            try:
                observer(name, outcome, conflicts)
            except Exception:
                log.exception("command observer failed for %s", name)

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Only the class defaults and the settings the caller passes, never os.environ.

        The library would merge the process environment and prefer `BOOKSTORE_<KEY>` over
        the keys passed, so our own `BOOKSTORE_*` settings space could silently turn table
        creation back on in a worker, or switch the insert path (the table lock or the
        lock-free database function). The composition root decides.
        """
        merged = dict(type(self).env)
        if type(self).snapshotting_intervals:
            merged["IS_SNAPSHOTTING_ENABLED"] = "y"
        merged.update(env or {})
        return Environment(name, merged)

    def construct_repository(self) -> BatchingRepository:
        """The library's repository, configured as the library would, that also loads
        several aggregates (a cart's books) and cold ones in fewer round trips."""
        cache_maxsize = self.env.get(self.AGGREGATE_CACHE_MAXSIZE)
        return BatchingRepository(
            event_store=self.events,
            snapshot_store=self.snapshots,
            cache_maxsize=int(cache_maxsize) if cache_maxsize else None,
            fastforward=strtobool(self.env.get(self.AGGREGATE_CACHE_FASTFORWARD, "y")),
            fastforward_skipping=strtobool(
                self.env.get(self.AGGREGATE_CACHE_FASTFORWARD_SKIPPING, "n")
            ),
            deepcopy_from_cache=strtobool(self.env.get(self.DEEPCOPY_FROM_AGGREGATE_CACHE, "y")),
        )

    @property
    def batching_repository(self) -> BatchingRepository:
        repository = self.repository
        assert isinstance(repository, BatchingRepository)
        return repository

    def save(
        self,
        *objs: MutableOrImmutableAggregate[UUID] | DomainEventProtocol[UUID] | None,
        **kwargs: Any,
    ) -> list[Recording[UUID]]:
        """The library's `save`, collecting pending events without its two runtime-Protocol
        `isinstance` checks per object (slow checks, a few percent of a command's CPU):
        everything this application saves is an `Aggregate` or one of its events."""
        aggregates = [obj for obj in objs if isinstance(obj, Aggregate)]
        if len(aggregates) != sum(obj is not None for obj in objs):
            return super().save(*objs, **kwargs)
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for aggregate in aggregates:
            processing_event.events.extend(aggregate.collect_events())
            processing_event.aggregates[aggregate.id] = aggregate
        processing_event.saved_kwargs.update(kwargs)
        recordings = self._record(processing_event)
        self.batching_repository.remember(processing_event.events)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        self.notify(processing_event.events)  # the library's deprecated hook, as it calls it
        return recordings

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        """The library's snapshots, taken from the saved aggregate itself when its version is
        the snapshot's: the library reads it back and replays up to `interval` events (a
        book's hundred) on the command's own thread, the same state at a real cost. An
        aggregate that moved past the snapshot's version in the same save is read back."""
        intervals = self.snapshotting_intervals
        if not (self.snapshots and intervals):
            return
        leftover: ProcessingEvent[UUID] = ProcessingEvent()
        for domain_event in processing_event.events:
            aggregate = processing_event.aggregates.get(domain_event.originator_id)
            if aggregate is None:
                continue
            interval = intervals.get(type(aggregate))
            if interval is None or domain_event.originator_version % interval:
                continue
            if aggregate.version == domain_event.originator_version:
                snapshot_class = getattr(type(aggregate), "Snapshot", type(self).snapshot_class)
                if snapshot_class is not None:
                    self.snapshots.put([snapshot_class.take(aggregate)])
                    continue
            leftover.events.append(domain_event)
            leftover.aggregates[domain_event.originator_id] = aggregate
        if leftover.events:
            super()._take_snapshots(leftover)

    def head(self) -> int:
        """The position of the newest event in the store (0 when empty)."""
        return self.recorder.max_notification_id() or 0

    def _save(self, ctx: CommandContext, *aggregates: Aggregate | None) -> int:
        """Save atomically, stamping each event with the request's metadata.

        Returns the position of the last event saved (the head when nothing was pending),
        which callers hand back as `X-Event-Position` for read-your-writes.
        """
        metadata = ctx.as_metadata()
        for aggregate in aggregates:
            if aggregate is None:
                continue
            for domain_event in aggregate.pending_events:
                object.__setattr__(domain_event, "metadata", metadata)
        recordings = self.save(*aggregates)
        if not recordings:
            return self.head()
        position = max(r.notification.id for r in recordings)
        topics = frozenset(r.notification.topic for r in recordings)
        # The events are committed: a failing wake-up (a broker down) must not turn a
        # successful command into an error. Projections catch up later anyway.
        for listener in self.commit_listeners:
            try:
                listener(position)
            except Exception:
                log.exception("commit listener failed after position %s", position)
        for topic_listener in self.commit_topic_listeners:
            try:
                topic_listener(position, topics)
            except Exception:
                log.exception("commit listener failed after position %s", position)
        return position

    def _find(self, cls: type[A], aggregate_id: UUID) -> A | None:
        """The aggregate of that id and type, or None (an id of another type is not it)."""
        try:
            aggregate: Aggregate = self.repository.get(aggregate_id, projector_func=project_events)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, cls) else None

    def _get_many(self, cls: type[A], aggregate_ids: Iterable[UUID], what: str) -> dict[UUID, A]:
        """Like `_get` for each id, loaded together (one round trip for the cached ones)."""
        ids = list(aggregate_ids)
        found = self.batching_repository.get_many(ids)
        for aggregate_id in ids:
            if not isinstance(found.get(aggregate_id), cls):
                raise NotFoundError(f"{what} {aggregate_id} not found")
        return cast(dict[UUID, A], {i: found[i] for i in ids})

    def _get(self, cls: type[A], aggregate_id: UUID, what: str) -> A:
        """Like `_find`, but a missing aggregate is the domain's `NotFoundError`."""
        aggregate = self._find(cls, aggregate_id)
        if aggregate is None:
            raise NotFoundError(f"{what} {aggregate_id} not found")
        return aggregate

    def _claim_key(self, kind: str, key: str, owner_id: UUID) -> KeyIndex:
        """The index aggregate for a key, claimed by `owner_id` (raises if taken)."""
        index = self._find(KeyIndex, key_id(kind, key))
        if index is None:
            return KeyIndex(kind=kind, key=key, owner_id=owner_id)
        index.claim(owner_id)
        return index

    def _move_key(self, kind: str, old: str, new: str, owner_id: UUID) -> list[KeyIndex]:
        """Claim the new key and release the old one, to be saved with the owner."""
        claimed = self._claim_key(kind, new, owner_id)
        released = self._get(KeyIndex, key_id(kind, old), f"{kind} index")
        released.release()
        return [claimed, released]

    def _owner_of(self, kind: str, key: str) -> UUID | None:
        """Who holds a key now (None if it was never claimed or has been released)."""
        index = self._find(KeyIndex, key_id(kind, key))
        return index.owner_id if index else None

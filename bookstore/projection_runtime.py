"""Wiring the projections into a process: the runner, the waiter, and what wakes them.

Embedded mode (no broker): each commit wakes a background thread of this process that
runs the catch-up. With a broker: each commit enqueues a coalesced catch-up task for the
Celery workers. Either way, readers wait for positions through `PositionWaiter`.

Rebuilds (`projections.rebuild`) run where the catch-ups run: in a Celery task with a
broker, else in a background thread of this process, which on start also resumes a
rebuild left interrupted (its owner died).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from sqlalchemy import Engine

from adapters.celery_wakeups import CeleryWaker
from bookstore.settings import Settings
from projections.background import BackgroundRunner
from projections.base import Projection
from projections.positions import PositionWaiter
from projections.rebuild import Rebuilds, RebuildStatus
from projections.registry import default_projections
from projections.runner import Runner
from projections.status import ProjectionStatus, projection_statuses
from read_model.rebuilds import Rebuild
from write_model.application import Bookstore

log = logging.getLogger(__name__)


class ProjectionServices:
    """The projection side of one process, built once with its container."""

    def __init__(
        self,
        settings: Settings,
        write_app: Bookstore,
        read_engine: Engine,
        projections: Sequence[Projection] | None = None,
    ) -> None:
        self.runner = Runner(
            write_app,
            read_engine,
            projections if projections is not None else default_projections(),
            idle_timeout_seconds=settings.projection_idle_timeout_seconds,
        )
        # Waits name store positions; the waiter locates them in the log the runner reads.
        self.waiter = PositionWaiter(read_engine, locate=self.runner.log.locate)
        self.runner.listeners.append(self.waiter.board.publish)
        self.rebuilds = Rebuilds(self.runner)
        self._stopping = threading.Event()
        self.background: BackgroundRunner | None = None
        self.waker: CeleryWaker | None = None
        if settings.broker_url:
            self.waker = CeleryWaker(settings.broker_url)
        else:
            self.background = BackgroundRunner(
                self.runner, batch_size=settings.projection_batch_size
            )
        write_app.commit_topic_listeners.append(self.on_commit)

    def readers_of(self, topics: frozenset[str]) -> list[str]:
        """The projections that read any of these stored topics, in the runner's order."""
        return [
            projection.name
            for projection in self.runner.projections.values()
            if not topics.isdisjoint(projection.topics)
        ]

    def on_commit(self, position: int, topics: frozenset[str]) -> None:
        """After every successful save: wake what catches up the projections that read
        one of the topics saved (none for a cart change)."""
        names = self.readers_of(topics)
        if not names:
            return
        if self.background is not None:
            self.background.wake(position, names)
        elif self.waker is not None:
            self.waker.wake(position, names)

    def start(self) -> None:
        """Embedded mode: start the in-process runner, and resume an interrupted rebuild
        (nothing to do with a broker: the workers do both)."""
        if self.background is not None:
            self.background.start()
            try:
                for name in self.rebuilds.interrupted():
                    log.info("resuming the interrupted rebuild of %s", name)
                    self.rebuilds.start_in_thread(name, should_stop=self._stopping.is_set)
            except Exception:
                log.warning("interrupted rebuilds could not be looked up", exc_info=True)

    def start_rebuild(self, name: str, *, requested_by: str | None = None) -> Rebuild:
        """Record a blue/green rebuild of `name` (or take up its interrupted one) and have it
        run: by a worker with a broker, else in a thread of this process.

        `KeyError` for an unknown projection; `RebuildRunningError` when one runs already.
        """
        rebuild = self.rebuilds.request(name, requested_by=requested_by)
        if self.waker is not None:
            self.waker.rebuild(name)
        else:
            self.rebuilds.start_in_thread(name, should_stop=self._stopping.is_set)
        return rebuild

    def rebuild_statuses(self) -> dict[str, RebuildStatus]:
        """Each projection's running rebuild, or else its last one."""
        return self.rebuilds.statuses()

    def close(self) -> None:
        # A rebuild thread stops at its next step and is resumed by the next start.
        self._stopping.set()
        self.rebuilds.join(timeout=30)
        if self.background is not None:
            self.background.stop()
        if self.waker is not None:
            self.waker.close()
        self.waiter.close()

    def position(self, name: str) -> int:
        self.runner.projection(name)
        return self.waiter.position(name)

    def wait_for(self, name: str, position: int, timeout: float = 5.0) -> bool:
        self.runner.projection(name)
        return self.waiter.wait_for(name, position, timeout)

    def statuses(self) -> list[ProjectionStatus]:
        return projection_statuses(self.runner, self.rebuilds.statuses())

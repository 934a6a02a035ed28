"""Wiring the projections into a process: the runner, the waiter, and what wakes them.

Embedded mode (no broker): each commit wakes a background thread of this process that
runs the catch-up. With a broker: each commit enqueues a coalesced catch-up task for the
Celery workers. Either way, readers wait for positions through `PositionWaiter`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

from adapters.celery_wakeups import CeleryWaker
from bookstore.settings import Settings
from projections.background import BackgroundRunner
from projections.base import Projection
from projections.positions import PositionWaiter
from projections.registry import default_projections
from projections.runner import Runner
from projections.status import ProjectionStatus, projection_statuses
from write_model.application import Bookstore


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
        self.background: BackgroundRunner | None = None
        self.waker: CeleryWaker | None = None
        if settings.broker_url:
            self.waker = CeleryWaker(settings.broker_url)
        else:
            self.background = BackgroundRunner(
                self.runner, batch_size=settings.projection_batch_size
            )
        write_app.commit_listeners.append(self.on_commit)

    def on_commit(self, position: int) -> None:
        """After every successful save: wake whatever runs the catch-up."""
        if self.background is not None:
            self.background.wake(position)
        elif self.waker is not None:
            self.waker.wake(position)

    def start(self) -> None:
        """Embedded mode: start the in-process runner (nothing to do with a broker)."""
        if self.background is not None:
            self.background.start()

    def close(self) -> None:
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
        return projection_statuses(self.runner)

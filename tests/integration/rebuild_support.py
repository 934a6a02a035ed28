"""Helpers for the rebuild tests (no tests here); importable by the Celery worker they run.

`SleepyBookListing` is book_listing whose registration handler, in a process where
`SLEEP_ON_TITLE_ENV` names a title, writes `SLEEPING_FILE_ENV` and sleeps the first time it
meets that title: a rebuild run by that process stops in the middle of its load, long
enough for the test to kill it. Once the file exists it sleeps no more, so the rebuild
resumed after the kill runs through.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from celery.signals import worker_init
from sqlalchemy import Engine, inspect, select

from bookstore import bootstrap
from bookstore.bootstrap import Container
from projections.base import Batch, Handler
from projections.book_listing import BookListingProjection
from projections.events import topic_of
from projections.order_history import OrderHistoryProjection
from projections.rebuild import RebuildOptions
from projections.rows import Row
from projections.user_directory import UserDirectoryProjection
from read_model.tables import projection_tracking
from workers import runtime
from workers.celery_app import app
from write_model.book import Book

SLEEP_ON_TITLE_ENV = "BOOKSTORE_TEST_REBUILD_SLEEP_ON_TITLE"
SLEEPING_FILE_ENV = "BOOKSTORE_TEST_REBUILD_SLEEPING_FILE"
POISON_TITLE = "Poison"


class SleepyBookListing(BookListingProjection):
    """book_listing that sleeps once on the marked title (see the module docstring)."""

    def handled(self) -> Mapping[str, Handler]:
        handlers = dict(super().handled())
        registered = handlers[topic_of(Book, "Registered")]

        def sleepy(row: Row | None, event: Any, batch: Batch) -> Row | None:
            mark = os.environ.get(SLEEP_ON_TITLE_ENV)
            if mark and event.title == mark:
                flag = Path(os.environ[SLEEPING_FILE_ENV])
                if not flag.exists():
                    flag.write_text(str(os.getpid()))
                    time.sleep(600)
            return registered(row, event, batch)

        handlers[topic_of(Book, "Registered")] = sleepy
        return handlers


class PickyBookListing(BookListingProjection):
    """book_listing as a newer release might have it: it refuses the title `Poison`."""

    def handled(self) -> Mapping[str, Handler]:
        handlers = dict(super().handled())
        registered = handlers[topic_of(Book, "Registered")]

        def picky(row: Row | None, event: Any, batch: Batch) -> Row | None:
            if event.title == POISON_TITLE:
                raise ValueError(f"cannot list {event.title!r}")
            return registered(row, event, batch)

        handlers[topic_of(Book, "Registered")] = picky
        return handlers


def build_sleepy_container() -> Container:
    """The worker's container: the sleepy book_listing, small load batches."""
    container = bootstrap.build()
    projections = (SleepyBookListing(), OrderHistoryProjection(), UserDirectoryProjection())
    container.projections.runner.projections = {p.name: p for p in projections}
    container.projections.rebuilds.options = RebuildOptions(batch_size=200)
    return container


@worker_init.connect  # type: ignore[untyped-decorator]
def _use_sleepy_projection(**_: object) -> None:
    """Only inside the worker process: importing this module elsewhere changes nothing."""
    runtime.container_factory = build_sleepy_container


def versioned_tables(engine: Engine) -> list[str]:
    """Tables of a version that does not serve (`<table>_v<N>`): none once a rebuild ends."""
    names = inspect(engine).get_table_names()
    return sorted(name for name in names if "_v" in name and name.rsplit("_v", 1)[1].isdigit())


def tracked_versions(engine: Engine) -> list[tuple[str, int, bool]]:
    """Every tracking row: (name, version, is_active)."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                projection_tracking.c.name,
                projection_tracking.c.version,
                projection_tracking.c.is_active,
            ).order_by(projection_tracking.c.name, projection_tracking.c.version)
        )
        return [(row.name, row.version, bool(row.is_active)) for row in rows]


__all__ = ["app"]

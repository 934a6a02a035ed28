"""The Celery app the crash test's worker runs (no tests here).

The real app and task, with the runner's projections swapped for two test ones: a counter
of applications (to show nothing is applied twice) that sleeps when it meets a marked
book, so the test can kill the worker in the middle of a batch, and book_listing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from celery.signals import worker_init
from sqlalchemy import Connection

from bookstore import bootstrap
from bookstore.bootstrap import Container
from projections.book_listing import BookListingProjection
from projections.events import Positioned
from tests.integration.projection_support import CountingProjection
from workers import runtime
from workers.celery_app import app

SLEEP_ON_TITLE_ENV = "BOOKSTORE_TEST_SLEEP_ON_TITLE"
SLEEPING_FILE_ENV = "BOOKSTORE_TEST_SLEEPING_FILE"


class SleepyCountingProjection(CountingProjection):
    """Applies the events before the marked one, then sleeps inside the open transaction."""

    def apply(self, connection: Connection, events: Sequence[Positioned]) -> None:
        mark = os.environ.get(SLEEP_ON_TITLE_ENV)
        for index, item in enumerate(events):
            if mark and getattr(item.event, "title", None) == mark:
                super().apply(connection, events[:index])
                Path(os.environ[SLEEPING_FILE_ENV]).write_text(str(item.position))
                time.sleep(600)
        super().apply(connection, events)


def build_test_container() -> Container:
    container = bootstrap.build()
    projections = (SleepyCountingProjection(), BookListingProjection())
    container.projections.runner.projections = {p.name: p for p in projections}
    return container


@worker_init.connect  # type: ignore[untyped-decorator]
def _use_test_projections(**_: object) -> None:
    """Only inside the worker process: importing this module elsewhere changes nothing."""
    runtime.container_factory = build_test_container


__all__ = ["app"]

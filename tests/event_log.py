"""Reading the event log in tests: which events a command really stored, and how many.

Tests of atomicity and concurrency assert on the log itself, not on what the
application says it did, so these read the recorder directly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application

ORDER_PLACED = "write_model.order:Order.Placed"
# More than any test stores; the recorder wants a limit.
_EVERYTHING = 1_000_000


def all_notifications(app: Application[UUID]) -> Sequence[Any]:
    """Every stored event of the application, in store order."""
    return app.recorder.select_notifications(start=None, limit=_EVERYTHING)


def topic_counts(app: Application[UUID]) -> dict[str, int]:
    """How many events of each topic the log holds."""
    return dict(Counter(notification.topic for notification in all_notifications(app)))


def count_topic(app: Application[UUID], topic: str) -> int:
    """How many events of one topic the log holds (filtered by the store)."""
    return len(app.recorder.select_notifications(start=None, limit=_EVERYTHING, topics=[topic]))

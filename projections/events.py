"""Naming the stored event types a projection handles, checked when the module loads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic, resolve_topic


def topic_of(aggregate: type[Aggregate], event_name: str) -> str:
    """The stored topic of `aggregate`'s event class `event_name`.

    Resolving it at once turns a misspelt event name into an import error instead of a
    projection that silently never sees its events.
    """
    topic = f"{get_topic(aggregate)}.{event_name}"
    resolve_topic(topic)
    return topic


@dataclass(frozen=True)
class Positioned:
    """A decoded domain event, its global position in the store (notification id), and the
    id of the transaction that wrote it (0 where the store has one writer at a time)."""

    position: int
    topic: str
    event: Any
    tx_id: int = 0

"""`GET /events`: one page of the event log, as the contract spells it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from adapters.event_feed import EventRecord


class EventPublic(BaseModel):
    """One stored event, upcast to its current version."""

    position: int = Field(description="Global store position (as in X-Event-Position).")
    aggregate_id: str = Field(description="Id of the aggregate that recorded the event.")
    aggregate_type: str = Field(examples=["Book"], description="The aggregate's type.")
    version: int = Field(description="The aggregate's version after this event.")
    type: str = Field(examples=["Book.Registered"], description="Aggregate and event name.")
    timestamp: datetime = Field(description="When it was recorded, RFC 3339 in UTC.")
    data: dict[str, Any] = Field(
        description="The event's fields: money as two-place strings, ids as strings, times "
        "as RFC 3339 in UTC. Never a password hash or a token."
    )
    metadata: dict[str, Any] = Field(
        description="`correlation_id` of the request and `actor_id` of the acting user."
    )

    @classmethod
    def of(cls, record: EventRecord) -> EventPublic:
        return cls(
            position=record.position,
            aggregate_id=record.aggregate_id,
            aggregate_type=record.aggregate_type,
            version=record.version,
            type=record.type,
            timestamp=record.timestamp,
            data=record.data,
            metadata=record.metadata,
        )


class EventPage(BaseModel):
    """Events after `after`, oldest first; ask again with `after=next_after` for more."""

    items: list[EventPublic]
    next_after: int = Field(
        description="Position of the last item returned, or `after` when there is none."
    )

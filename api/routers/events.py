"""/events: the event log, a page at a time, for analysts (admin only).

Pages are read from the store by position (`adapters/event_feed.py`), never the log whole:
one indexed query per request, `limit` events at most, each decoded and upcast by the
application's mapper. A plain `def` route: the store read blocks, so it runs in the thread
pool.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError

from adapters.event_feed import EventFilter, decode, event_types, read_page, topics_of
from api.deps import AdminUser, WriteApp
from api.problems import problem_responses
from api.schemas.events import EventPage, EventPublic

router = APIRouter(prefix="/events", tags=["events"])

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
# Positions are PostgreSQL bigints.
MAX_POSITION = 2**63 - 1
TYPE_PATTERN = r"^[A-Za-z][A-Za-z0-9]*\.[A-Za-z][A-Za-z0-9]*$"


def _unknown_type(name: str) -> RequestValidationError:
    known = ", ".join(event_types())
    return RequestValidationError(
        [
            {
                "loc": ("query", "type"),
                "msg": f"unknown event type {name!r}; known types: {known}",
                "type": "value_error",
            }
        ]
    )


@router.get(
    "",
    name="events-list",
    response_model=EventPage,
    summary="The event log after a position, oldest first (admin)",
    description=(
        "Events with a position above `after` (default 0), at most `limit` (1..1000, "
        "default 100), each upcast to its current version. Filter by `type` "
        '(`"<Aggregate>.<Event>"`, e.g. `Book.Registered`; repeat the parameter for '
        "several) and `aggregate_id`. Walk the log by sending `after=next_after` until "
        "`items` comes back empty. On PostgreSQL a page holds only events committed before "
        "every transaction still open began, so a reader at the head never passes an "
        "event still being written."
    ),
    responses=problem_responses(
        {
            401: "Missing, invalid or expired token, or the account is deactivated",
            403: "Only admins may read the event log",
            422: "Bad after, limit, type or aggregate_id",
        }
    ),
)
def list_events(
    *,
    admin: AdminUser,
    app: WriteApp,
    after: Annotated[
        int, Query(ge=0, le=MAX_POSITION, description="Return events after this position.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    event_type: Annotated[
        list[str] | None,
        Query(
            alias="type",
            description="Event types to keep, e.g. `Book.Registered` (repeatable).",
        ),
    ] = None,
    aggregate_id: Annotated[UUID | None, Query(description="Only this aggregate's events.")] = None,
) -> EventPage:
    del admin  # checked by the dependency
    names = list(dict.fromkeys(event_type or ()))
    for name in names:
        if len(name) > 100 or name not in event_types():
            raise _unknown_type(name[:100])
    selection = EventFilter(after=after, topics=topics_of(names), aggregate_id=aggregate_id)
    items = [EventPublic.of(decode(app, stored)) for stored in read_page(app, selection, limit)]
    return EventPage(items=items, next_after=items[-1].position if items else after)

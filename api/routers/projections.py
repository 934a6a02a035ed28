"""/projections: how each read model is doing, for operators (admin only).

The same status as `bookstore projections status` and the projection metrics, read from the
read database and the event store on each request. A plain `def` route: it blocks on both.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import AdminUser, Projections
from api.problems import problem_responses
from api.schemas.projections import ProjectionList, ProjectionPublic

router = APIRouter(prefix="/projections", tags=["projections"])


@router.get(
    "",
    name="projections-list",
    response_model=ProjectionList,
    summary="Every projection's position, lag, state and last error (admin)",
    description=(
        '`{"items": [...]}`, one item per projection in a fixed order, never paged: '
        "`position` is the newest store position it has processed, `head` the store's "
        "newest, `lag_events` the events between them it has still to process and "
        "`lag_seconds` how long the oldest of those has waited. `state` is `up_to_date`, "
        "`catching_up` or `failed` (then `last_error` says why)."
    ),
    responses=problem_responses(
        {
            401: "Missing, invalid or expired token, or the account is deactivated",
            403: "Only admins may read the projections' status",
        }
    ),
)
def list_projections(admin: AdminUser, projections: Projections) -> ProjectionList:
    del admin  # checked by the dependency
    return ProjectionList(items=[ProjectionPublic.of(found) for found in projections.statuses()])

"""/projections: how each read model is doing, for operators (admin only), and rebuilds.

The same status as `bookstore projections status` and the projection metrics, read from the
read database and the event store on each request. Plain `def` routes: they block on both.

`POST /projections/{name}/rebuild` records a blue/green rebuild and has it run (a worker
task with a broker, else a thread of this server): the serving version keeps answering
reads until the new one has caught up and the switch makes it serve.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from adapters.celery_wakeups import BrokerUnavailableError
from api.deps import AdminUser, Projections
from api.problems import ProblemError, problem_responses
from api.schemas.projections import ProjectionList, ProjectionPublic, RebuildPublic
from projections.rebuild import RebuildStatus
from read_model.rebuilds import RebuildRunningError

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


STATUS_PATH = "/projections"
ProjectionName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,99}$", examples=["book_listing"])]


@router.post(
    "/{name}/rebuild",
    name="projections-rebuild",
    status_code=202,
    response_model=RebuildPublic,
    summary="Rebuild a projection beside the serving one, then switch (admin)",
    description=(
        "Records a blue/green rebuild and starts it: version N+1 of the projection's tables "
        "is built from the whole log beside version N, which keeps serving and following "
        "new events; once N+1 has caught up, one transaction makes it serve and N is "
        "dropped. Answers 202 at once with the rebuild; follow it in `GET /projections` "
        "(`Location`), where the projection's `rebuild` shows its state and progress. A "
        "rebuild left interrupted (its process died) is resumed. 409 `conflict` while one "
        "is running."
    ),
    responses={
        202: {
            "description": "Accepted: the rebuild is recorded and starting",
            "headers": {
                "Location": {
                    "description": "Where its progress shows: `/projections`.",
                    "schema": {"type": "string"},
                }
            },
        },
        **problem_responses(
            {
                401: "Missing, invalid or expired token, or the account is deactivated",
                403: "Only admins may rebuild projections",
                404: "No projection of that name",
                409: "A rebuild of this projection is running already",
                422: "The name is not a projection name",
                503: "The broker did not take the task (the rebuild waits, pending)",
            }
        ),
    },
)
def rebuild_projection(
    name: ProjectionName, admin: AdminUser, projections: Projections
) -> JSONResponse:
    if name not in projections.runner.names:
        known = ", ".join(projections.runner.names)
        raise ProblemError("not-found", f"No projection {name!r} (known: {known})")
    try:
        rebuild = projections.start_rebuild(name, requested_by=f"user:{admin.id}")
    except RebuildRunningError as error:
        running = error.running
        raise ProblemError(
            "conflict",
            f"A rebuild of {name} is already running"
            + (f" (version {running.version}, {running.state})" if running else ""),
            projection=name,
            version=running.version if running else None,
        ) from None
    except BrokerUnavailableError:
        raise ProblemError(
            "service-unavailable",
            "The broker did not take the rebuild; it waits, pending: ask again",
            headers={"Retry-After": "5"},
        ) from None
    body = RebuildPublic.of(name, RebuildStatus(rebuild, owner_alive=True))
    return JSONResponse(
        body.model_dump(mode="json"), status_code=202, headers={"Location": STATUS_PATH}
    )

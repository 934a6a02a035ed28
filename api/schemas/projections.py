"""`GET /projections`: how each projection is doing, as the contract spells it, and
`POST /projections/{name}/rebuild`: the blue/green rebuild it starts."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from projections.rebuild import RebuildStatus
from projections.status import ProjectionStatus


class RebuildPublic(BaseModel):
    """A blue/green rebuild: version `version` built beside `from_version`, which serves
    until the switch."""

    projection: str = Field(examples=["book_listing"])
    version: int = Field(description="The version being built (serves once switched).")
    from_version: int = Field(description="The version serving when the rebuild began.")
    state: str = Field(
        examples=["loading"],
        description="`pending`, `loading`, `indexing`, `catching_up`, `switching`, "
        "`dropping_old` while running; `interrupted` when its process died (the next "
        "rebuild request, or a worker's start, resumes it); then `done`, `cancelled` or "
        "`failed` (`last_error` and `error_position` say why).",
    )
    position: int = Field(description="The store position the new version has processed.")
    target_position: int = Field(description="The store's head when loading began.")
    events_applied: int
    events_per_second: float = Field(description="Events applied per second so far.")
    eta_seconds: float | None = Field(description="Time left to reach the target, at that rate.")
    started_at: datetime
    finished_at: datetime | None
    cancel_requested: bool
    last_error: str | None
    error_position: int | None

    @classmethod
    def of(cls, name: str, status: RebuildStatus) -> RebuildPublic:
        return cls.model_validate({"projection": name, **status.as_dict()})


class ProjectionPublic(BaseModel):
    """One projection as operators see it (its serving version)."""

    name: str = Field(examples=["book_listing"])
    position: int = Field(description="The newest store position it has processed.")
    head: int = Field(description="The store's head when the status was read.")
    lag_events: int = Field(description="Events in the log it has not processed yet.")
    lag_seconds: float = Field(
        description="How long the oldest event it has not processed has waited (0 when caught up)."
    )
    state: str = Field(
        examples=["up_to_date"], description="`up_to_date`, `catching_up` or `failed`."
    )
    last_error: str | None = Field(
        description="Why it is stopped, when `failed`: the error at the event it stopped at."
    )
    version: int = Field(description="The version of its tables that serves reads.")
    rebuild: RebuildPublic | None = Field(
        description="Its running blue/green rebuild, or else its last one (null: never)."
    )

    @classmethod
    def of(cls, status: ProjectionStatus) -> ProjectionPublic:
        return cls(
            name=status.name,
            position=status.position,
            head=status.head,
            lag_events=status.lag_events,
            lag_seconds=status.lag_seconds,
            state=status.state,
            last_error=status.last_error,
            version=status.version,
            rebuild=RebuildPublic.of(status.name, status.rebuild) if status.rebuild else None,
        )


class ProjectionList(BaseModel):
    """Every projection, in the runner's order (a handful: never paged)."""

    items: list[ProjectionPublic]

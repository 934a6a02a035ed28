"""`GET /projections`: how each projection is doing, as the contract spells it."""

from __future__ import annotations

from pydantic import BaseModel, Field

from projections.status import ProjectionStatus


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
        )


class ProjectionList(BaseModel):
    """Every projection, in the runner's order (a handful: never paged)."""

    items: list[ProjectionPublic]

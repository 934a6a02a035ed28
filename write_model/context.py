"""Who asked for a command and under which request, recorded on every event it causes."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4


@dataclass(frozen=True)
class CommandContext:
    """The correlation id of the request and the acting user (None for the system)."""

    correlation_id: str
    actor_id: UUID | None = None

    @classmethod
    def system(cls, reason: str = "system") -> CommandContext:
        """For commands not caused by a request (CLI, migrations, demo data)."""
        return cls(correlation_id=f"{reason}-{uuid4().hex}")

    def as_metadata(self) -> dict[str, str | None]:
        return {
            "correlation_id": self.correlation_id,
            "actor_id": str(self.actor_id) if self.actor_id else None,
        }

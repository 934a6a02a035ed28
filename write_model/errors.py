"""Domain errors: one small hierarchy that the API maps to HTTP statuses.

Kept free of HTTP words on purpose: the write model says *what* went wrong, the outer
ring decides how to say it to a client.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


class DomainError(Exception):
    """Base of every error a command can raise because of the request or the state."""


class NotFoundError(DomainError):
    """The aggregate does not exist (or is not visible to the actor)."""


class ConflictError(DomainError):
    """The command clashes with the current state (a taken key, a wrong state, ...)."""


class DuplicateKeyError(ConflictError):
    """A unique natural key (ISBN, email, idempotency key) is already taken."""


class InvalidValueError(DomainError):
    """A value breaks a rule of the domain (checksum, range, precision)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvalidTransitionError(ConflictError):
    """The aggregate's state machine does not allow this step."""


class PermissionDeniedError(DomainError):
    """The actor may not do this to this aggregate."""


class PreconditionFailedError(DomainError):
    """The client expected another version of the aggregate (If-Match)."""


class ConcurrencyError(ConflictError):
    """Optimistic concurrency lost too many times in a row; the client may retry."""


class LastAdminError(ConflictError):
    """The change would leave the shop with no (active) admin."""


class EmptyCartError(ConflictError):
    """An order was asked for with nothing in the cart."""


class BookUnavailableError(ConflictError):
    """A book that was removed was asked for."""


@dataclass(frozen=True)
class StockShortfall:
    """One cart line that cannot be served as asked."""

    book_id: UUID
    title: str
    requested: int
    available: int


class InsufficientStockError(ConflictError):
    """Too few copies (or a removed book) for one or more lines; names every such line."""

    def __init__(self, shortfalls: list[StockShortfall]) -> None:
        self.shortfalls = shortfalls
        parts = [f"'{s.title}': {s.requested} asked, {s.available} available" for s in shortfalls]
        super().__init__("Insufficient stock for " + "; ".join(parts))

"""The Cart aggregate: one per user, lines keyed by book id, 1..99 copies a line.

Prices are not kept here: a cart shows the books' current prices, and an order snapshots
them when it is placed.
"""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from write_model.errors import InvalidValueError, NotFoundError
from write_model.ids import cart_id_for
from write_model.values import MAX_LINE_QUANTITY, validate_quantity


class Cart(Aggregate):
    """The books a user means to buy, in the order they were added."""

    @staticmethod
    def create_id(user_id: UUID) -> UUID:
        return cart_id_for(user_id)

    @event("Created")
    def __init__(self, user_id: UUID) -> None:
        self.user_id = user_id
        # Keyed by the book id's string: snapshots are JSON, whose keys must be strings.
        self.lines: dict[str, int] = {}

    def add_item(self, book_id: UUID, quantity: int = 1) -> None:
        """Add copies; the same book again adds up, never past 99."""
        validate_quantity(quantity)
        new_total = self.lines.get(str(book_id), 0) + quantity
        if new_total > MAX_LINE_QUANTITY:
            raise InvalidValueError(
                "quantity", f"a cart line holds at most {MAX_LINE_QUANTITY} copies"
            )
        self._item_added(book_id=book_id, quantity=quantity)

    @event("ItemAdded")
    def _item_added(self, book_id: UUID, quantity: int) -> None:
        self.lines[str(book_id)] = self.lines.get(str(book_id), 0) + quantity

    def set_quantity(self, book_id: UUID, quantity: int) -> bool:
        """Set a line's copies; the line must exist."""
        validate_quantity(quantity)
        current = self.quantity_of(book_id)
        if current == quantity:
            return False
        self._quantity_set(book_id=book_id, quantity=quantity)
        return True

    @event("QuantitySet")
    def _quantity_set(self, book_id: UUID, quantity: int) -> None:
        self.lines[str(book_id)] = quantity

    def remove_item(self, book_id: UUID) -> None:
        self.quantity_of(book_id)
        self._item_removed(book_id=book_id)

    @event("ItemRemoved")
    def _item_removed(self, book_id: UUID) -> None:
        del self.lines[str(book_id)]

    def clear(self) -> bool:
        if not self.lines:
            return False
        self._cleared()
        return True

    @event("Cleared")
    def _cleared(self) -> None:
        self.lines = {}

    def quantity_of(self, book_id: UUID) -> int:
        """Copies of a book in the cart; NotFoundError when it is not there."""
        try:
            return self.lines[str(book_id)]
        except KeyError:
            raise NotFoundError(f"Book {book_id} is not in the cart") from None

    def items(self) -> list[tuple[UUID, int]]:
        """The lines as (book id, quantity), in the order they were first added."""
        return [(UUID(book_id), quantity) for book_id, quantity in self.lines.items()]

    @property
    def total_quantity(self) -> int:
        return sum(self.lines.values())


def cart_total(items: list[tuple[UUID, int]], prices: dict[UUID, Decimal]) -> Decimal:
    """Exact total of the lines at the given unit prices (lines without a price count 0)."""
    return sum((prices[b] * q for b, q in items if b in prices), start=Decimal("0.00")).quantize(
        Decimal("0.01")
    )

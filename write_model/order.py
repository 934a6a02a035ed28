"""The Order aggregate: lines with prices snapshotted, a total, and a small state machine."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from write_model.errors import InvalidTransitionError


class OrderStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


_NEXT = {
    OrderStatus.PENDING: OrderStatus.PAID,
    OrderStatus.PAID: OrderStatus.SHIPPED,
    OrderStatus.SHIPPED: OrderStatus.DELIVERED,
}


@dataclass(frozen=True)
class OrderLine:
    """One line as sold: the price is the one at the moment of ordering."""

    book_id: UUID
    title: str
    quantity: int
    unit_price: Decimal

    @property
    def line_total(self) -> Decimal:
        return (self.unit_price * self.quantity).quantize(Decimal("0.01"))

    def as_event_data(self) -> dict[str, Any]:
        return {
            "book_id": self.book_id,
            "title": self.title,
            "quantity": self.quantity,
            "unit_price": self.unit_price,
        }

    @classmethod
    def from_event_data(cls, data: dict[str, Any]) -> OrderLine:
        return cls(
            book_id=data["book_id"] if isinstance(data["book_id"], UUID) else UUID(data["book_id"]),
            title=data["title"],
            quantity=int(data["quantity"]),
            unit_price=Decimal(data["unit_price"]),
        )


class Order(Aggregate):
    """A placed order. Stock was taken when it was placed and comes back if it is cancelled."""

    @classmethod
    def place(cls, *, user_id: UUID, lines: list[OrderLine]) -> Order:
        total = sum((line.line_total for line in lines), start=Decimal("0.00"))
        return cls(
            user_id=user_id,
            lines=[line.as_event_data() for line in lines],
            total=total.quantize(Decimal("0.01")),
        )

    @event("Placed")
    def __init__(self, user_id: UUID, lines: list[dict[str, Any]], total: Decimal) -> None:
        self.user_id = user_id
        self.line_data = lines
        self.total = total
        self.status_name = OrderStatus.PENDING.value

    @property
    def status(self) -> OrderStatus:
        return OrderStatus(self.status_name)

    @property
    def lines(self) -> list[OrderLine]:
        return [OrderLine.from_event_data(d) for d in self.line_data]

    def advance_to(self, status: OrderStatus) -> None:
        """Move one step along pending -> paid -> shipped -> delivered."""
        if _NEXT.get(self.status) != status:
            raise InvalidTransitionError(
                f"An order that is {self.status.value} cannot become {OrderStatus(status).value}"
            )
        self._status_changed(status=status.value)

    @event("StatusChanged")
    def _status_changed(self, status: str) -> None:
        self.status_name = status

    def cancel(self, *, by_staff: bool) -> None:
        """Owners cancel while pending; staff while pending or paid."""
        allowed = {OrderStatus.PENDING, OrderStatus.PAID} if by_staff else {OrderStatus.PENDING}
        if self.status not in allowed:
            raise InvalidTransitionError(
                f"An order that is {self.status.value} cannot be cancelled"
                + ("" if by_staff else " by its owner")
            )
        self._cancelled()

    @event("Cancelled")
    def _cancelled(self) -> None:
        self.status_name = OrderStatus.CANCELLED.value

"""order_history and order_line: each user's orders, newest first, with their lines."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from uuid import UUID

from projections.base import Batch, Handler, Projection
from projections.events import topic_of
from projections.rows import Row
from read_model.tables import order_history, order_line
from read_model.values import to_cents
from write_model.order import Order, OrderStatus


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


class OrderHistoryProjection(Projection):
    """One row per order (status, total) and one per line, prices as they were sold."""

    name = "order_history"
    table = order_history
    child_tables = (order_line,)

    def handled(self) -> Mapping[str, Handler]:
        return {
            topic_of(Order, "Placed"): self.placed,
            topic_of(Order, "StatusChanged"): self.status_changed,
            topic_of(Order, "Cancelled"): self.cancelled,
        }

    @staticmethod
    def placed(row: Row | None, event: Any, batch: Batch) -> Row | None:
        del row
        lines: list[Row] = []
        for number, line in enumerate(event.lines, start=1):
            unit_price = Decimal(line["unit_price"])
            lines.append(
                {
                    "order_id": event.originator_id,
                    "line_no": number,
                    "book_id": _uuid(line["book_id"]),
                    "title": line["title"],
                    "quantity": int(line["quantity"]),
                    "unit_price_cents": to_cents(unit_price),
                    "line_total_cents": to_cents(unit_price * int(line["quantity"])),
                }
            )
        batch.add_children(order_line, lines)
        return {
            "user_id": _uuid(event.user_id),
            "status": OrderStatus.PENDING.value,
            "total_cents": to_cents(Decimal(event.total)),
            "created_at": event.timestamp,
        }

    @staticmethod
    def status_changed(row: Row | None, event: Any, _: Batch) -> Row | None:
        if row is None:
            return None
        row["status"] = OrderStatus(event.status).value
        return row

    @staticmethod
    def cancelled(row: Row | None, event: Any, _: Batch) -> Row | None:
        del event
        if row is None:
            return None
        row["status"] = OrderStatus.CANCELLED.value
        return row

"""Order bodies: the order as placed (prices as sold), a page of them, a status change.

An order is built from two sources that must look the same to a client: the write model
(`OrderPublic.of`, for the answers to commands, always current) and the `order_history`
projection (`OrderPublic.of_row`, for reads).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from api.schemas.money import MoneyText, money_text
from write_model.order import Order, OrderStatus

# The header a client sends to make `POST /orders` safe to retry. Visible ASCII only,
# as the common practice (Stripe, the IETF draft) has it; a UUID is a good choice.
IDEMPOTENCY_KEY_MAX = 255
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]+$"


class OrderItemPublic(BaseModel):
    book_id: UUID
    title: str
    quantity: int
    unit_price: MoneyText = Field(description="The price when the order was placed.")
    line_total: MoneyText


class OrderPublic(BaseModel):
    id: UUID
    user_id: UUID
    status: OrderStatus
    items: list[OrderItemPublic]
    total: MoneyText
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, order: Order) -> OrderPublic:
        """From the write model."""
        return cls(
            id=order.id,
            user_id=order.user_id,
            status=order.status,
            items=[
                OrderItemPublic(
                    book_id=line.book_id,
                    title=line.title,
                    quantity=line.quantity,
                    unit_price=money_text(line.unit_price),
                    line_total=money_text(line.line_total),
                )
                for line in order.lines
            ],
            total=money_text(order.total),
            created_at=order.created_on,
            updated_at=order.modified_on,
        )

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> OrderPublic:
        """From `read_model.orders` (money as two-place Decimals there)."""
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            status=OrderStatus(row["status"]),
            items=[
                OrderItemPublic(
                    book_id=item["book_id"],
                    title=item["title"],
                    quantity=item["quantity"],
                    unit_price=money_text(Decimal(item["unit_price"])),
                    line_total=money_text(Decimal(item["line_total"])),
                )
                for item in row["items"]
            ],
            total=money_text(Decimal(row["total"])),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


class OrderPage(BaseModel):
    items: list[OrderPublic]
    total: int
    limit: int
    offset: int


class OrderStatusChange(BaseModel):
    """Staff move an order one step along pending -> paid -> shipped -> delivered.

    `cancelled` is not a status one sets: `POST /orders/{id}/cancel` puts the stock back.
    """

    status: Literal["paid", "shipped", "delivered"]

"""Cart bodies: a line to add or re-count, and the cart as a shopper sees it.

The cart is read from the write model (`CartView`), so prices are the books' current ones
and a line is `available` only while its book is on sale with enough copies; the totals
count available lines only. Money leaves as two-place strings.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.money import MoneyText, money_text
from write_model.cart_view import CartView
from write_model.values import MAX_LINE_QUANTITY

# Strict: `"2"`, `2.0` and `true` are not a number of copies.
LineQuantity = Annotated[
    int, Field(strict=True, ge=1, le=MAX_LINE_QUANTITY, description="Copies, 1..99.")
]


class CartItemCreate(BaseModel):
    """Add copies of a book; the same book again adds up (never past 99 a line)."""

    model_config = ConfigDict(extra="ignore")

    book_id: UUID
    quantity: LineQuantity = 1


class CartItemUpdate(BaseModel):
    """Set a line's number of copies."""

    model_config = ConfigDict(extra="ignore")

    quantity: LineQuantity


class CartItemPublic(BaseModel):
    book_id: UUID
    title: str
    unit_price: MoneyText = Field(description="The book's current price.")
    quantity: int
    line_total: MoneyText
    available: bool = Field(
        description="False when the book was removed or has fewer copies than the line."
    )


class CartPublic(BaseModel):
    items: list[CartItemPublic]
    total_quantity: int = Field(description="Copies on available lines.")
    total: MoneyText = Field(description="Sum of the available lines.")

    @classmethod
    def of(cls, view: CartView) -> CartPublic:
        return cls(
            items=[
                CartItemPublic(
                    book_id=item.book_id,
                    title=item.title,
                    unit_price=money_text(item.unit_price),
                    quantity=item.quantity,
                    line_total=money_text(item.line_total),
                    available=item.available,
                )
                for item in view.items
            ],
            total_quantity=view.total_quantity,
            total=money_text(view.total),
        )

"""What a shopper sees of their cart: current prices, availability, exact totals."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from write_model.book import Book
from write_model.cart import Cart

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class CartItemView:
    book_id: UUID
    title: str
    unit_price: Decimal
    quantity: int
    available: bool

    @property
    def line_total(self) -> Decimal:
        return (self.unit_price * self.quantity).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class CartView:
    items: list[CartItemView]

    @property
    def total_quantity(self) -> int:
        """Only lines that could be ordered now count."""
        return sum(i.quantity for i in self.items if i.available)

    @property
    def total(self) -> Decimal:
        return sum((i.line_total for i in self.items if i.available), start=ZERO)


def view_cart(cart: Cart | None, books: dict[UUID, Book]) -> CartView:
    """A line is unavailable when its book is removed or has fewer copies than the line."""
    if cart is None:
        return CartView(items=[])
    items = []
    for book_id, quantity in cart.items():
        book = books[book_id]
        items.append(
            CartItemView(
                book_id=book_id,
                title=book.title,
                unit_price=book.price,
                quantity=quantity,
                available=not book.removed and book.stock >= quantity,
            )
        )
    return CartView(items=items)

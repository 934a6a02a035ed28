"""The Book aggregate: catalogue details and the stock that orders take.

Versioning: `Book.Registered` is at class version 2 (it gained `language`). Events stored
before carry no `class_version` and no `language`; the library's mapper calls
`Registered.upcast_v1_v2` on their state as it decodes them, so every reader (the
aggregate, projections, `GET /events`, the export) sees the current shape. Snapshots of a
Book are upcast the same way by `Book.upcast_v1_v2`. A stored event type is never renamed;
a new field gets a default in an upcaster rather than a migration of the log.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from write_model.errors import (
    BookUnavailableError,
    ConflictError,
    InsufficientStockError,
    InvalidValueError,
    StockShortfall,
)
from write_model.isbn import normalise_isbn
from write_model.values import MAX_STOCK, validate_price, validate_stock, validate_text

TITLE_MAX = 500
AUTHOR_MAX = 300
CATEGORY_MAX = 100
# What a book registered before `language` existed is taken to be written in (BCP 47 tag).
DEFAULT_LANGUAGE = "en"
LANGUAGE_MAX = 35


class Book(Aggregate):
    """A title on sale. Stock never goes below zero; a removed book takes no command."""

    # Version 2 of the aggregate's own state (its snapshots) holds `language`.
    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A snapshot taken before `language` existed: the book is in the default one."""
        state.setdefault("language", DEFAULT_LANGUAGE)

    class Registered(Aggregate.Created):
        """The book entered the catalogue. v2 added `language`; v1 events are upcast."""

        class_version = 2

        title: str
        author: str
        isbn: str
        price: Decimal
        stock: int
        category: str
        language: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """v1 (no `language`) -> v2: books registered before it are in the default."""
            state.setdefault("language", DEFAULT_LANGUAGE)

    @classmethod
    def register(
        cls,
        *,
        title: str,
        author: str,
        isbn: str,
        price: Decimal | int | str,
        stock: int,
        category: str,
        language: str = DEFAULT_LANGUAGE,
    ) -> Book:
        """Validate, then record the registration (validation never runs on replay)."""
        return cls(
            title=validate_text("title", title, TITLE_MAX),
            author=validate_text("author", author, AUTHOR_MAX),
            isbn=normalise_isbn(isbn),
            price=validate_price(price),
            stock=validate_stock(stock),
            category=validate_text("category", category, CATEGORY_MAX),
            language=validate_text("language", language, LANGUAGE_MAX),
        )

    @event(Registered)
    def __init__(  # noqa: PLR0917 (the event's fields, replayed by keyword)
        self,
        title: str,
        author: str,
        isbn: str,
        price: Decimal,
        stock: int,
        category: str,
        language: str = DEFAULT_LANGUAGE,
    ) -> None:
        self.title = title
        self.author = author
        self.isbn = isbn
        self.price = price
        self.stock = stock
        self.category = category
        self.language = language
        self.removed = False

    def _ensure_live(self) -> None:
        if self.removed:
            raise BookUnavailableError(f"Book '{self.title}' has been removed")

    def change_details(
        self,
        *,
        title: str | None = None,
        author: str | None = None,
        isbn: str | None = None,
        price: Decimal | int | str | None = None,
        category: str | None = None,
    ) -> bool:
        """Change any subset of the details; records nothing when nothing changes."""
        self._ensure_live()
        changes: dict[str, Any] = {}
        if title is not None:
            changes["title"] = validate_text("title", title, TITLE_MAX)
        if author is not None:
            changes["author"] = validate_text("author", author, AUTHOR_MAX)
        if isbn is not None:
            changes["isbn"] = normalise_isbn(isbn)
        if price is not None:
            changes["price"] = validate_price(price)
        if category is not None:
            changes["category"] = validate_text("category", category, CATEGORY_MAX)
        real = {k: v for k, v in changes.items() if getattr(self, k) != v}
        if not real:
            return False
        self._details_changed(**real)
        return True

    @event("DetailsChanged")
    def _details_changed(
        self,
        title: str | None = None,
        author: str | None = None,
        isbn: str | None = None,
        price: Decimal | None = None,
        category: str | None = None,
    ) -> None:
        if title is not None:
            self.title = title
        if author is not None:
            self.author = author
        if isbn is not None:
            self.isbn = isbn
        if price is not None:
            self.price = price
        if category is not None:
            self.category = category

    def restock(self, quantity: int) -> None:
        """Add delivered copies, up to `MAX_STOCK` in all."""
        self._ensure_live()
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise InvalidValueError("quantity", "must be a whole number >= 1")
        room = MAX_STOCK - self.stock
        if quantity > room:
            raise InvalidValueError(
                "quantity",
                f"must be at most {room}: a book holds at most {MAX_STOCK} copies "
                f"and '{self.title}' has {self.stock}",
            )
        self._restocked(quantity=quantity)

    @event("Restocked")
    def _restocked(self, quantity: int) -> None:
        self.stock += quantity

    def correct_stock(self, stock: int) -> bool:
        """Set the stock after a count; records nothing when it is already right."""
        self._ensure_live()
        stock = validate_stock(stock)
        if stock == self.stock:
            return False
        self._stock_corrected(stock=stock)
        return True

    @event("StockCorrected")
    def _stock_corrected(self, stock: int) -> None:
        self.stock = stock

    def shortfall(self, quantity: int) -> StockShortfall | None:
        """What is missing to serve `quantity` copies now, or None if they can be."""
        available = 0 if self.removed else self.stock
        if quantity <= available:
            return None
        return StockShortfall(
            book_id=self.id, title=self.title, requested=quantity, available=available
        )

    def reserve(self, quantity: int, order_id: UUID) -> None:
        """Take copies for an order; never below zero."""
        self._ensure_live()
        gap = self.shortfall(quantity)
        if gap is not None:
            raise InsufficientStockError([gap])
        self._stock_reserved(quantity=quantity, order_id=order_id)

    @event("StockReserved")
    def _stock_reserved(self, quantity: int, order_id: UUID) -> None:
        self.stock -= quantity

    def release(self, quantity: int, order_id: UUID) -> None:
        """Put back the copies of a cancelled order (even onto a removed book's count).

        Refused (a conflict with the current stock, not a bad request) only when staff set
        the stock so near `MAX_STOCK` meanwhile that the copies no longer fit: lowering
        the stock first lets the cancellation through.
        """
        if quantity > MAX_STOCK - self.stock:
            raise ConflictError(
                f"Putting back {quantity} copies of '{self.title}' would bring its stock of "
                f"{self.stock} above {MAX_STOCK}, the most a book holds; correct it first"
            )
        self._stock_released(quantity=quantity, order_id=order_id)

    @event("StockReleased")
    def _stock_released(self, quantity: int, order_id: UUID) -> None:
        self.stock += quantity

    def remove(self) -> None:
        """Withdraw the book from sale for good."""
        self._ensure_live()
        self._removed()

    @event("Removed")
    def _removed(self) -> None:
        self.removed = True

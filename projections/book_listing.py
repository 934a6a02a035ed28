"""book_listing: one row per live book, shaped for every filter and sort of GET /books."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from projections.base import Batch, Handler, Projection
from projections.events import topic_of
from projections.rows import Row
from read_model.tables import book_listing
from read_model.values import to_cents
from write_model.book import Book

_DETAILS = ("title", "author", "isbn", "category")


def _with_lower_copies(row: Row) -> Row:
    row["title_lower"] = row["title"].lower()
    row["author_lower"] = row["author"].lower()
    row["category_lower"] = row["category"].lower()
    return row


class BookListingProjection(Projection):
    """Every field of the Book JSON plus the aggregate version; removed books leave."""

    name = "book_listing"
    table = book_listing

    def handled(self) -> Mapping[str, Handler]:
        return {
            topic_of(Book, "Registered"): self.registered,
            topic_of(Book, "DetailsChanged"): self.details_changed,
            topic_of(Book, "Restocked"): self.stock_added,
            topic_of(Book, "StockReleased"): self.stock_added,
            topic_of(Book, "StockReserved"): self.stock_taken,
            topic_of(Book, "StockCorrected"): self.stock_corrected,
            topic_of(Book, "Removed"): self.removed,
        }

    @staticmethod
    def registered(row: Row | None, event: Any, _: Batch) -> Row | None:
        del row
        return _with_lower_copies(
            {
                "title": event.title,
                "author": event.author,
                "isbn": event.isbn,
                "price_cents": to_cents(event.price),
                "stock": event.stock,
                "category": event.category,
                "created_at": event.timestamp,
            }
        )

    @staticmethod
    def details_changed(row: Row | None, event: Any, _: Batch) -> Row | None:
        if row is None:
            return None
        for field in _DETAILS:
            value = getattr(event, field, None)
            if value is not None:
                row[field] = value
        if getattr(event, "price", None) is not None:
            row["price_cents"] = to_cents(event.price)
        return _with_lower_copies(row)

    @staticmethod
    def stock_added(row: Row | None, event: Any, _: Batch) -> Row | None:
        # A removed book has no row; stock released onto it afterwards changes nothing.
        if row is None:
            return None
        row["stock"] += event.quantity
        return row

    @staticmethod
    def stock_taken(row: Row | None, event: Any, _: Batch) -> Row | None:
        if row is None:
            return None
        row["stock"] -= event.quantity
        return row

    @staticmethod
    def stock_corrected(row: Row | None, event: Any, _: Batch) -> Row | None:
        if row is None:
            return None
        row["stock"] = event.stock
        return row

    @staticmethod
    def removed(row: Row | None, event: Any, _: Batch) -> Row | None:
        del row, event
        return None

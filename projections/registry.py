"""The projections this application runs, by name."""

from __future__ import annotations

from projections.base import Projection
from projections.book_listing import BookListingProjection
from projections.order_history import OrderHistoryProjection
from projections.user_directory import UserDirectoryProjection

PROJECTION_NAMES = ("book_listing", "order_history", "user_directory")


def default_projections() -> list[Projection]:
    """A fresh instance of each projection, in a stable order."""
    return [BookListingProjection(), OrderHistoryProjection(), UserDirectoryProjection()]

"""Pages: the one shape every list query returns (items, total, limit, offset)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Select, func, select

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, with the total number of matches across all pages."""

    items: list[T]
    total: int
    limit: int
    offset: int


def fetch_page(
    connection: Connection,
    query: Select[Any],
    *,
    limit: int,
    offset: int,
    convert: Callable[[Any], T],
) -> Page[T]:
    """Run a filtered, ordered query for one page and count all its matches.

    The count drops the ORDER BY: it only needs the filters, and sorting every match to
    count them would waste the sort index.
    """
    if limit < 1 or offset < 0:
        msg = f"limit must be >= 1 and offset >= 0 (got limit={limit}, offset={offset})"
        raise ValueError(msg)
    rows = connection.execute(query.limit(limit).offset(offset)).all()
    total = connection.execute(
        select(func.count()).select_from(query.order_by(None).subquery())
    ).scalar_one()
    return Page(items=[convert(row) for row in rows], total=int(total), limit=limit, offset=offset)

"""Queries of `book_listing`: the catalogue as `GET /books` filters, sorts and pages it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Connection, Select, func, or_, select, true

from read_model.pages import Page, fetch_page
from read_model.positioned_cache import Stamp
from read_model.tables import book_listing as books
from read_model.tracking import serving_stamp_query
from read_model.values import from_cents, like_pattern, to_cents, utc


class BookSort(StrEnum):
    """The sorts of `GET /books`; every one breaks ties by id ascending."""

    TITLE = "title"
    TITLE_DESC = "-title"
    PRICE = "price"
    PRICE_DESC = "-price"
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"


_SORT_COLUMNS: dict[BookSort, ColumnElement[Any]] = {
    BookSort.TITLE: books.c.title_lower,
    BookSort.TITLE_DESC: books.c.title_lower,
    BookSort.PRICE: books.c.price_cents,
    BookSort.PRICE_DESC: books.c.price_cents,
    BookSort.CREATED_AT: books.c.created_at,
    BookSort.CREATED_AT_DESC: books.c.created_at,
}

_SORT_KEYS: dict[BookSort, ColumnElement[Any]] = {
    # Titles sort alphabetically whatever their case.
    BookSort.TITLE: books.c.title_lower.asc(),
    BookSort.TITLE_DESC: books.c.title_lower.desc(),
    BookSort.PRICE: books.c.price_cents.asc(),
    BookSort.PRICE_DESC: books.c.price_cents.desc(),
    BookSort.CREATED_AT: books.c.created_at.asc(),
    BookSort.CREATED_AT_DESC: books.c.created_at.desc(),
}


@dataclass(frozen=True)
class BookFilters:
    """The filters of `GET /books`; None means "not filtered"."""

    q: str | None = None
    author: str | None = None
    category: str | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    in_stock: bool | None = None


_COLUMNS = (
    books.c.id,
    books.c.title,
    books.c.author,
    books.c.isbn,
    books.c.price_cents,
    books.c.stock,
    books.c.category,
    books.c.created_at,
    books.c.updated_at,
    books.c.version,
)


def _book(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "author": row.author,
        "isbn": row.isbn,
        "price": from_cents(row.price_cents),
        "stock": row.stock,
        "category": row.category,
        "created_at": utc(row.created_at),
        "updated_at": utc(row.updated_at),
        "version": row.version,
    }


def _filtered(query: Select[Any], filters: BookFilters) -> Select[Any]:
    if filters.q:
        pattern = like_pattern(filters.q)
        query = query.where(
            or_(
                books.c.title_lower.like(pattern, escape="\\"),
                books.c.author_lower.like(pattern, escape="\\"),
            )
        )
    if filters.author is not None:
        query = query.where(books.c.author_lower == filters.author.strip().lower())
    if filters.category is not None:
        query = query.where(books.c.category_lower == filters.category.strip().lower())
    if filters.min_price is not None:
        query = query.where(books.c.price_cents >= to_cents(filters.min_price))
    if filters.max_price is not None:
        query = query.where(books.c.price_cents <= to_cents(filters.max_price))
    if filters.in_stock is True:
        query = query.where(books.c.stock > 0)
    elif filters.in_stock is False:
        query = query.where(books.c.stock == 0)
    return query


def list_books(
    connection: Connection,
    filters: BookFilters | None = None,
    sort: BookSort | str = BookSort.TITLE,
    limit: int = 20,
    offset: int = 0,
) -> Page[dict[str, Any]]:
    """Live books matching every filter, in `sort` order then by id.

    Each dict holds the Book JSON fields (price as a two-place Decimal, tz-aware UTC
    timestamps) plus the aggregate `version`.
    """
    order = _SORT_KEYS[BookSort(sort)]
    query = _filtered(select(*_COLUMNS), filters or BookFilters()).order_by(order, books.c.id.asc())
    return fetch_page(connection, query, limit=limit, offset=offset, convert=_book)


def get_book(connection: Connection, book_id: UUID) -> dict[str, Any] | None:
    """One live book with its aggregate version, or None (never registered, or removed)."""
    row = connection.execute(select(*_COLUMNS).where(books.c.id == book_id)).first()
    return _book(row) if row else None


@dataclass(frozen=True)
class ListingRead:
    """One page of `GET /books` and the state of `book_listing` it was read from.

    `total` is None when the caller did not ask for the count; `stamp` is None while the
    projection is not tracked yet (then nothing may be kept against it).
    """

    stamp: Stamp | None
    items: list[dict[str, Any]]
    total: int | None


def read_listing(
    connection: Connection,
    tracked_as: str,
    filters: BookFilters,
    sort: BookSort | str,
    *,
    limit: int,
    offset: int,
    count: bool,
) -> ListingRead:
    """A page of live books, their count if asked, and the projection's serving stamp,
    all from one statement, so from one snapshot, in one round trip.

    The stamp row is joined to the page (a left join: an empty page still brings the
    stamp) and, if asked, to the count as a scalar subquery; the same snapshot is what
    lets a caller keep the result against the stamp (`PositionedCache`). Before the
    projection's first tracking row there is no stamp to read it with: a plain read.
    """
    sort = BookSort(sort)
    if limit < 1 or offset < 0:
        msg = f"limit must be >= 1 and offset >= 0 (got limit={limit}, offset={offset})"
        raise ValueError(msg)
    matching = _filtered(select(*_COLUMNS, _SORT_COLUMNS[sort].label("sort_key")), filters)
    page = (
        matching.order_by(_SORT_KEYS[sort], books.c.id.asc()).limit(limit).offset(offset)
    ).subquery("page")
    stamp = serving_stamp_query(tracked_as).subquery("stamp")
    columns: list[Any] = [stamp.c.version.label("stamp_version"), stamp.c.position]
    if count:
        counted = _filtered(select(func.count()).select_from(books), filters)
        columns.append(counted.scalar_subquery().label("total"))
    key = page.c.sort_key.desc() if sort.value.startswith("-") else page.c.sort_key.asc()
    query = (
        select(*columns, *(page.c[column.name] for column in _COLUMNS))
        .select_from(stamp.outerjoin(page, true()))
        .order_by(key, page.c.id.asc())
    )
    rows = connection.execute(query).all()
    if not rows:  # not tracked yet
        plain = list_books(connection, filters, sort, limit=limit, offset=offset)
        return ListingRead(None, plain.items, plain.total if count else None)
    first = rows[0]
    return ListingRead(
        stamp=Stamp(int(first.stamp_version), int(first.position)),
        items=[_book(row) for row in rows if row.id is not None],
        total=int(first.total) if count else None,
    )


def read_book(
    connection: Connection, tracked_as: str, book_id: UUID
) -> tuple[Stamp | None, dict[str, Any] | None]:
    """One live book (or None) and the projection's serving stamp, from one statement (one
    snapshot, one round trip), as `read_listing` reads a page."""
    stamp = serving_stamp_query(tracked_as).subquery("stamp")
    book = select(*_COLUMNS).where(books.c.id == book_id).subquery("book")
    row = connection.execute(
        select(
            stamp.c.version.label("stamp_version"),
            stamp.c.position,
            *(book.c[column.name] for column in _COLUMNS),
        ).select_from(stamp.outerjoin(book, true()))
    ).first()
    if row is None:  # not tracked yet
        return None, get_book(connection, book_id)
    found = _book(row) if row.id is not None else None
    return Stamp(int(row.stamp_version), int(row.position)), found

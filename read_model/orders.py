"""Queries of `order_history` and `order_line`: a user's orders, newest first."""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select

from read_model.pages import Page, fetch_page
from read_model.tables import order_history as orders
from read_model.tables import order_line as lines
from read_model.values import from_cents, utc

_COLUMNS = (
    orders.c.id,
    orders.c.user_id,
    orders.c.status,
    orders.c.total_cents,
    orders.c.created_at,
    orders.c.updated_at,
    orders.c.version,
)


def _lines_of(connection: Connection, order_ids: list[UUID]) -> dict[UUID, list[dict[str, Any]]]:
    """The lines of several orders in one query, in the order they were placed."""
    found: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
    if not order_ids:
        return found
    rows = connection.execute(
        select(lines)
        .where(lines.c.order_id.in_(order_ids))
        .order_by(lines.c.order_id, lines.c.line_no)
    )
    for row in rows:
        found[row.order_id].append(
            {
                "book_id": row.book_id,
                "title": row.title,
                "quantity": row.quantity,
                "unit_price": from_cents(row.unit_price_cents),
                "line_total": from_cents(row.line_total_cents),
            }
        )
    return found


def _order(row: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": row.id,
        "user_id": row.user_id,
        "status": row.status,
        "items": items,
        "total": from_cents(row.total_cents),
        "created_at": utc(row.created_at),
        "updated_at": utc(row.updated_at),
        "version": row.version,
    }


def list_orders(
    connection: Connection,
    *,
    user_id: UUID | None = None,
    limit: int = 20,
    offset: int = 0,
) -> Page[dict[str, Any]]:
    """Orders newest first (ties by id); one user's when `user_id` is given, else all.

    Each dict holds the Order JSON fields (money as two-place Decimals) plus `version`.
    """
    query = select(*_COLUMNS).order_by(orders.c.created_at.desc(), orders.c.id.asc())
    if user_id is not None:
        query = query.where(orders.c.user_id == user_id)
    page = fetch_page(connection, query, limit=limit, offset=offset, convert=lambda row: row)
    items = _lines_of(connection, [row.id for row in page.items])
    return Page(
        items=[_order(row, items[row.id]) for row in page.items],
        total=page.total,
        limit=limit,
        offset=offset,
    )


def get_order(connection: Connection, order_id: UUID) -> dict[str, Any] | None:
    """One order with its lines, or None."""
    row = connection.execute(select(*_COLUMNS).where(orders.c.id == order_id)).first()
    if row is None:
        return None
    return _order(row, _lines_of(connection, [row.id])[row.id])

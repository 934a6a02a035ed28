"""Queries of `user_directory`: the admin's list of users."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select

from read_model.pages import Page, fetch_page
from read_model.tables import user_directory as users
from read_model.values import like_pattern, utc

_COLUMNS = (
    users.c.id,
    users.c.email,
    users.c.full_name,
    users.c.role,
    users.c.is_active,
    users.c.created_at,
    users.c.updated_at,
)


def _user(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "email": row.email,
        "full_name": row.full_name,
        "role": row.role,
        "is_active": bool(row.is_active),
        "created_at": utc(row.created_at),
        "updated_at": utc(row.updated_at),
    }


def list_users(
    connection: Connection,
    *,
    role: str | None = None,
    q: str | None = None,
    is_active: bool | None = None,
    limit: int = 20,
    offset: int = 0,
) -> Page[dict[str, Any]]:
    """Users by email then id; `q` is a case-insensitive substring of the email."""
    query = select(*_COLUMNS).order_by(users.c.email, users.c.id)
    if role is not None:
        query = query.where(users.c.role == role)
    if is_active is not None:
        query = query.where(users.c.is_active == is_active)
    if q:
        # Emails are stored lower-cased, so a lower-cased pattern is case-insensitive.
        query = query.where(users.c.email.like(like_pattern(q), escape="\\"))
    return fetch_page(connection, query, limit=limit, offset=offset, convert=_user)


def get_user(connection: Connection, user_id: UUID) -> dict[str, Any] | None:
    """One user of the directory, or None."""
    row = connection.execute(select(*_COLUMNS).where(users.c.id == user_id)).first()
    return _user(row) if row else None

"""The one clock of the adapters: aware UTC moments, also from SQLite's naive ones."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; every moment stored here is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

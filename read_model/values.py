"""Conversions between the read tables' storage forms and the values queries return."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

CENT = Decimal("0.01")


def utc(moment: datetime) -> datetime:
    """A tz-aware UTC datetime; SQLite hands back naive ones (always stored in UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def to_cents(amount: Decimal) -> int:
    """Exact integer cents of a money amount with at most two places."""
    return int((amount * 100).to_integral_exact())


def from_cents(cents: int) -> Decimal:
    """A money amount with exactly two places."""
    return (Decimal(cents) / 100).quantize(CENT)


def like_pattern(text: str) -> str:
    """`%text%` for LIKE ... ESCAPE '\\', lower-cased, with wildcards in `text` escaped."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"

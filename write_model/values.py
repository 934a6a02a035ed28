"""Validation of the plain values that aggregates keep: money, text, quantities, emails."""

from __future__ import annotations

import unicodedata
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from write_model.errors import InvalidValueError

CENT = Decimal("0.01")
MAX_PRICE = Decimal("1000000")
MAX_LINE_QUANTITY = 99
# The most copies a book may hold: `book_listing.stock` is a 32-bit INTEGER, and an event
# leaving more would stop that projection for good (every read of it would then lag).
MAX_STOCK = 2**31 - 1


class Role(StrEnum):
    """User roles, ordered: a higher role may do all that a lower one may."""

    CUSTOMER = "customer"
    STAFF = "staff"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def includes(self, other: Role) -> bool:
        """True when this role may do what `other` may."""
        return self.rank >= other.rank


_ROLE_RANK = {Role.CUSTOMER: 0, Role.STAFF: 1, Role.ADMIN: 2}


def validate_price(value: Decimal | int | str) -> Decimal:
    """A price is 0 <= p < 1,000,000 with at most two decimal places; returned with two."""
    try:
        price = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise InvalidValueError("price", f"'{value}' is not a number") from None
    if not price.is_finite():
        raise InvalidValueError("price", "must be a finite number")
    exponent = price.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2 and price != price.quantize(CENT):
        raise InvalidValueError("price", "has more than two decimal places")
    if price < 0 or price >= MAX_PRICE:
        raise InvalidValueError("price", "must be at least 0 and below 1000000")
    return price.quantize(CENT)


def validate_text(field: str, value: str, max_length: int) -> str:
    """Strip surrounding white space; refuse empty or over-long text."""
    text = value.strip()
    if not text:
        raise InvalidValueError(field, "must not be empty")
    if len(text) > max_length:
        raise InvalidValueError(field, f"must be at most {max_length} characters")
    return text


def validate_stock(value: int) -> int:
    """Stock is a whole number of copies, from 0 to `MAX_STOCK`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_STOCK:
        raise InvalidValueError("stock", f"must be a whole number from 0 to {MAX_STOCK}")
    return value


def validate_quantity(value: int, field: str = "quantity") -> int:
    """A cart line holds 1..99 copies."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValueError(field, "must be a whole number")
    if not 1 <= value <= MAX_LINE_QUANTITY:
        raise InvalidValueError(field, f"must be between 1 and {MAX_LINE_QUANTITY}")
    return value


def normalise_email(value: str) -> str:
    """Emails are keyed NFC-normalised and lower-cased, so every spelling finds one key.

    Full syntax checks belong to the API's validator.
    """
    email = unicodedata.normalize("NFC", value).strip().lower()
    local, sep, domain = email.partition("@")
    if not sep or not local or "." not in domain or " " in email or len(email) > 320:
        raise InvalidValueError("email", f"'{value}' is not an email address")
    return email

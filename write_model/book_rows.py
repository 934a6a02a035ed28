"""One row of a catalogue import, checked by the rules `POST /books` applies to a create body.

A reader (CSV or JSON, in `adapters.book_files`) turns a file into `RawRow`s: a row number
and the fields as the file spelled them (text from CSV, JSON values from JSON). Here each
becomes a `BookRow` ready for the write model, or a `RowError` listing every field that is
wrong, so one pass over a file can tell staff everything to fix at once.

It lives in the write model, in the standard library alone, because the HTTP route and the
`bookstore books import` command must agree on it exactly, and because its rules are the
Book aggregate's own (`validate_text`, `validate_price`, `normalise_isbn`), plus what a
file can smuggle in that a typed body cannot: control characters and lone surrogates (an
undecodable byte of a CSV, or a `\\ud800` escape in JSON), which would otherwise reach the
event log and stop the `book_listing` projection (PostgreSQL refuses NUL in text).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from write_model import values
from write_model.book import AUTHOR_MAX, CATEGORY_MAX, TITLE_MAX
from write_model.errors import InvalidValueError
from write_model.isbn import normalise_isbn
from write_model.values import validate_price, validate_text

FIELDS = ("title", "author", "isbn", "price", "stock", "category")
# The Book aggregate's own cap (`book_listing.stock` is a 32-bit INTEGER), named here too
# for the import's schema.
MAX_STOCK = values.MAX_STOCK
# Raw values quoted back in a report are cut to this many characters.
ECHO_MAX = 40
# Longer than any ISBN can be spelt with hyphens and spaces (as `POST /books` allows).
ISBN_TEXT_MAX = 32

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_DIGITS = re.compile(r"[0-9]+")
# How a price is spelt as text, as `POST /books` takes it: digits, an optional fraction.
_MONEY_TEXT = re.compile(r"-?[0-9]{1,16}(\.[0-9]{1,16})?")
NOT_UTF8 = "must be UTF-8 text (found an undecodable byte or a lone surrogate)"
CONTROL_CHARACTERS = "must not contain control characters (such as NUL, tab or newline)"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RawRow:
    """A data row as a reader found it; `problem` says why it has no fields, if so.

    `textual`: every value is text (a CSV cell), so a stock is read from its digits and an
    empty cell is a value left out. In JSON, as in `POST /books`, a stock is an integer.
    """

    number: int
    fields: Mapping[str, object] | None
    problem: str | None = None
    textual: bool = False


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """What is wrong with one field (`field` None: with the row as a whole)."""

    field: str | None
    message: str
    kind: str = "value_error"

    def as_json(self) -> dict[str, object]:
        """The shape of the API's validation issues: `loc`, `msg`, `type`."""
        return {"loc": [self.field] if self.field else [], "msg": self.message, "type": self.kind}


@dataclass(frozen=True, slots=True)
class RowError:
    """A row that cannot be imported, with every reason; `isbn` as well as it is known."""

    number: int
    isbn: str | None
    issues: tuple[FieldIssue, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "row": self.number,
            "isbn": self.isbn,
            "errors": [issue.as_json() for issue in self.issues],
        }


@dataclass(frozen=True, slots=True)
class BookRow:
    """A valid row: the values the Book aggregate stores. `stock` None: not given.

    A new book gets stock 0 when none is given; an existing one keeps its stock.
    """

    number: int
    title: str
    author: str
    isbn: str
    price: Decimal
    stock: int | None
    category: str


class _BadFieldError(Exception):
    def __init__(self, message: str, kind: str = "value_error") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


def printable(value: str, limit: int = ECHO_MAX) -> str:
    """A raw value safe to quote back in JSON: no lone surrogates or control characters."""
    cleaned = _CONTROL.sub("\ufffd", _SURROGATE.sub("\ufffd", value))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "\u2026"


def _check_text(value: object, limit: int, name: str) -> str:
    if not isinstance(value, str):
        raise _BadFieldError("must be a string", "string_type")
    if _SURROGATE.search(value):
        raise _BadFieldError(NOT_UTF8)
    if _CONTROL.search(value):
        raise _BadFieldError(CONTROL_CHARACTERS)
    try:
        return validate_text(name, value, limit)
    except InvalidValueError as error:
        raise _BadFieldError(error.message) from None


def _check_isbn(value: object) -> str:
    if value is None or value == "":
        raise _BadFieldError("Field required", "missing")
    if not isinstance(value, str):
        raise _BadFieldError("must be a string", "string_type")
    message = "is not a valid ISBN-10 or ISBN-13 (length or check digit)"
    if len(value) > ISBN_TEXT_MAX:
        raise _BadFieldError(message)
    try:
        return normalise_isbn(value)
    except InvalidValueError:
        raise _BadFieldError(message) from None


def _check_price(value: object) -> Decimal:
    if isinstance(value, str) and not value.strip():
        raise _BadFieldError("Field required", "missing")
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal | float):
        raise _BadFieldError("must be a decimal number such as 12.50", "decimal_type")
    if isinstance(value, str) and not _MONEY_TEXT.fullmatch(value.strip()):
        raise _BadFieldError("must be a decimal number such as 12.50")
    try:
        return validate_price(value if not isinstance(value, float) else repr(value))
    except InvalidValueError as error:
        raise _BadFieldError(printable(error.message, 80)) from None
    except (ArithmeticError, ValueError):
        raise _BadFieldError("is not a valid price") from None


def _check_stock(value: object, *, textual: bool) -> int | None:
    message = f"must be a whole number from 0 to {MAX_STOCK}"
    if textual and isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, bool) or (isinstance(value, str) and not textual):
        raise _BadFieldError(message, "int_type")
    if isinstance(value, str):
        text = value.strip()
        if not _DIGITS.fullmatch(text) or len(text) > 10:
            raise _BadFieldError(message, "int_parsing")
        value = int(text)
    if not isinstance(value, int):
        raise _BadFieldError(message, "int_type")
    if not 0 <= value <= MAX_STOCK:
        raise _BadFieldError(message)
    return value


def _raw_isbn(fields: Mapping[str, object]) -> str | None:
    raw = fields.get("isbn")
    return printable(raw) if isinstance(raw, str) and raw else None


def _checked(
    fields: Mapping[str, object],
    name: str,
    check: Callable[[object], T],
    issues: list[FieldIssue],
) -> T | None:
    """`check` of the field's value; None (and an issue noted) when it fails."""
    if name not in fields:
        if name != "stock":
            issues.append(FieldIssue(name, "Field required", "missing"))
        return None
    try:
        return check(fields.get(name))
    except _BadFieldError as invalid:
        issues.append(FieldIssue(name, invalid.message, invalid.kind))
        return None


def validate_row(raw: RawRow) -> BookRow | RowError:
    """The row as a `BookRow`, or a `RowError` naming every field that is wrong."""
    if raw.fields is None:
        return RowError(raw.number, None, (FieldIssue(None, raw.problem or "unreadable row"),))
    fields = raw.fields
    issues: list[FieldIssue] = []
    title = _checked(fields, "title", lambda v: _check_text(v, TITLE_MAX, "title"), issues)
    author = _checked(fields, "author", lambda v: _check_text(v, AUTHOR_MAX, "author"), issues)
    isbn = _checked(fields, "isbn", _check_isbn, issues)
    price = _checked(fields, "price", _check_price, issues)
    stock = _checked(fields, "stock", lambda v: _check_stock(v, textual=raw.textual), issues)
    category = _checked(
        fields, "category", lambda v: _check_text(v, CATEGORY_MAX, "category"), issues
    )
    if issues or title is None or author is None or isbn is None or price is None or not category:
        return RowError(raw.number, isbn or _raw_isbn(fields), tuple(issues))
    return BookRow(raw.number, title, author, isbn, price, stock, category)

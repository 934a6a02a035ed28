"""Book bodies: `BookCreate` / `BookUpdate` in, `BookPublic` / `BookPage` / `BookHistory` out.

Money is exact end to end: requests may send a price as a string or a JSON number (the
books router parses JSON numbers as decimals, never floats, so `19.999999999999999999`
is refused rather than rounded to `20.00`), and responses always send a string with two
places. Text fields refuse control characters and lone surrogates (`"\\ud800"`), which
no event could store: a 422 naming the field, never a 500.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from api.schemas.money import CENT, MoneyText, money_text
from write_model.book import AUTHOR_MAX, CATEGORY_MAX, TITLE_MAX, Book
from write_model.errors import InvalidValueError
from write_model.isbn import normalise_isbn
from write_model.values import MAX_STOCK

PRICE_LIMIT = Decimal("1000000")  # prices are 0 <= p < 1,000,000
# Digits, an optional fraction: what a price or a price filter is spelt as in a string.
_MONEY_TEXT = re.compile(r"-?[0-9]{1,16}(\.[0-9]{1,16})?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
ISBN_INPUT_MAX = 32  # 13 digits with hyphens and spaces fit with room to spare

# -------------------------------------------------------------------------------- money


def _places(amount: Decimal) -> int:
    """Decimal places that carry a digit: 12.500 has two, 12.505 three (no rounding)."""
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite, checked by the caller
    significant = list(digits)
    while exponent < 0 and len(significant) > 1 and significant[-1] == 0:
        significant.pop()
        exponent += 1
    if not any(significant):
        return 0
    return max(0, -exponent)


def exact_money(value: object) -> Decimal:
    """A money amount from a JSON string or number, exactly: >= 0, at most two places.

    A float only reaches here when the JSON was not parsed by the books router (its own
    parser gives decimals); its shortest repr is taken, which is exact for any float that
    came from a two-place number. The upper bound is each field's own (`Price`,
    `PriceBound`); the amount comes back unrounded, to be bounded first, then quantized.
    """
    if isinstance(value, bool):
        msg = "must be a decimal number such as 12.50, not a boolean"
        raise ValueError(msg)
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        amount = Decimal(repr(value))
    elif isinstance(value, str) and _MONEY_TEXT.fullmatch(value.strip()):
        amount = Decimal(value.strip())
    else:
        msg = "must be a decimal number such as 12.50 (a string or a JSON number)"
        raise ValueError(msg)
    if not amount.is_finite():
        msg = "must be a finite number"
        raise ValueError(msg)
    if _places(amount) > 2:
        msg = "must have at most two decimal places"
        raise ValueError(msg)
    if amount < 0:
        msg = "must be at least 0"
        raise ValueError(msg)
    return amount


def _below_limit(amount: Decimal) -> Decimal:
    if amount >= PRICE_LIMIT:
        msg = f"must be below {PRICE_LIMIT}"
        raise ValueError(msg)
    return amount.quantize(CENT)


def _at_most_limit(amount: Decimal) -> Decimal:
    if amount > PRICE_LIMIT:
        msg = f"must be at most {PRICE_LIMIT}"
        raise ValueError(msg)
    return amount.quantize(CENT)


_PRICE_STRING = r"^[0-9]{1,6}(\.[0-9]{1,2})?$"
# A price as a client sends it: a string or a JSON number, 0 <= p < 1,000,000.
Price = Annotated[
    Decimal,
    BeforeValidator(exact_money),
    AfterValidator(_below_limit),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _PRICE_STRING},
                {"type": "number", "minimum": 0, "exclusiveMaximum": 1_000_000},
            ],
            "description": "0 <= price < 1,000,000, at most two decimal places.",
            "examples": ["12.50"],
        }
    ),
]
# A price filter: the same form, up to 1,000,000 inclusive (so "everything" is sayable).
PriceBound = Annotated[
    Decimal,
    BeforeValidator(exact_money),
    AfterValidator(_at_most_limit),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([0-9]{1,6}(\.[0-9]{1,2})?|1000000(\.0{1,2})?)$",
            "examples": ["10.00"],
        }
    ),
]
# -------------------------------------------------------------------------------- text


def safe_text(value: str) -> str:
    """One line of text that any event and database can store.

    No C0 control character or DEL (PostgreSQL refuses NUL; a title is one line), and no
    lone surrogate: JSON's `"\\ud800"` decodes to one, and UTF-8 cannot encode it.
    """
    if _CONTROL.search(value):
        msg = "must not contain control characters (such as NUL, tab or newline)"
        raise ValueError(msg)
    if _SURROGATE.search(value):
        msg = "must not contain lone surrogates (such as \\ud800): not valid Unicode text"
        raise ValueError(msg)
    return value


def _stripped(max_length: int) -> StringConstraints:
    """Surrounding white space stripped first, then 1..max_length characters."""
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


# For the OpenAPI schema (the validators enforce it): one line, not only white space.
ONE_LINE_NOT_BLANK = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
_ONE_LINE = Field(json_schema_extra={"pattern": ONE_LINE_NOT_BLANK})

Title = Annotated[str, _stripped(TITLE_MAX), AfterValidator(safe_text), _ONE_LINE]
Author = Annotated[str, _stripped(AUTHOR_MAX), AfterValidator(safe_text), _ONE_LINE]
Category = Annotated[str, _stripped(CATEGORY_MAX), AfterValidator(safe_text), _ONE_LINE]


def _isbn(value: str) -> str:
    try:
        return normalise_isbn(safe_text(value))
    except InvalidValueError as error:
        raise ValueError(error.message) from None


Isbn = Annotated[
    str,
    StringConstraints(max_length=ISBN_INPUT_MAX),
    AfterValidator(_isbn),
    Field(
        json_schema_extra={"pattern": r"^[0-9Xx -]{10,32}$"},
        description="ISBN-10 or ISBN-13 with a valid checksum; hyphens and spaces allowed. "
        "Stored and answered as 13 digits.",
        examples=["978-0-441-17271-9"],
    ),
]
# At most what the write model allows (`book_listing.stock` is a 32-bit INTEGER).
Stock = Annotated[int, Field(ge=0, le=MAX_STOCK, strict=True, description="Copies in stock.")]

# -------------------------------------------------------------------------------- bodies


class BookCreate(BaseModel):
    """A new book. `stock` defaults to 0."""

    model_config = ConfigDict(extra="ignore")

    title: Title
    author: Author
    isbn: Isbn
    price: Price
    stock: Stock = 0
    category: Category


def _no_null_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


# A field that may be left out but is never null: `None` stands for "not sent" in Python
# only, so the schema has no null branch (SkipJsonSchema) and no `default: null`.
Unsent = SkipJsonSchema[None]


def _optional() -> Any:
    return Field(default=None, json_schema_extra=_no_null_default)


class BookUpdate(BaseModel):
    """Any subset of a book's fields; a field left out is unchanged (null is refused).

    The OpenAPI schema says so too: every field optional, none nullable, so generated
    clients type them `X | Unset` and never offer a None the server would refuse.
    """

    model_config = ConfigDict(extra="ignore")

    title: Title | Unsent = _optional()
    author: Author | Unsent = _optional()
    isbn: Isbn | Unsent = _optional()
    price: Price | Unsent = _optional()
    stock: Stock | Unsent = _optional()
    category: Category | Unsent = _optional()

    @field_validator("title", "author", "isbn", "price", "stock", "category", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Runs only on fields the client sent: leaving a field out keeps it, null is a
        # mistake (no book has a null title) and says so rather than being ignored.
        if value is None:
            msg = "may be left out, but not null"
            raise ValueError(msg)
        return value


class BookPublic(BaseModel):
    """A book as every response shows it."""

    id: UUID
    title: str
    author: str
    isbn: str = Field(description="13 digits.")
    price: MoneyText
    stock: int
    category: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, book: Book) -> BookPublic:
        """From the write model (after a command, or as of a time)."""
        return cls(
            id=book.id,
            title=book.title,
            author=book.author,
            isbn=book.isbn,
            price=money_text(book.price),
            stock=book.stock,
            category=book.category,
            created_at=book.created_on,
            updated_at=book.modified_on,
        )

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> BookPublic:
        """From a `book_listing` row as `read_model.books` returns it."""
        return cls.model_validate({**row, "price": money_text(row["price"])})


class BookPage(BaseModel):
    items: list[BookPublic]
    total: int
    limit: int
    offset: int


class BookEvent(BaseModel):
    """One recorded event of a book."""

    position: int = Field(description="Global store position (as in X-Event-Position).")
    type: str = Field(examples=["Book.Registered"], description="Aggregate and event name.")
    version: int = Field(description="The book's version after this event (its ETag).")
    timestamp: datetime
    data: dict[str, Any] = Field(description="The event's fields; money as two-place strings.")
    metadata: dict[str, Any] = Field(
        description="`correlation_id` of the request and `actor_id` of the acting user."
    )


class BookHistory(BaseModel):
    items: list[BookEvent]

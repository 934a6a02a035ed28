"""Bodies of `POST /books/import`: the report it answers, its 422, and one JSON row.

The report is the contract's, word for word: `{"created", "updated", "failed", "errors":
[{"row", "isbn", "errors": [...]}]}`; each inner error has the shape of the API's other
validation issues (`loc` within the row, `msg`, `type`). The all-or-nothing 422 is a
problem whose `errors` holds those same row entries.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.problems import PROBLEM_BASE, ValidationIssue
from write_model.book import AUTHOR_MAX, CATEGORY_MAX, TITLE_MAX
from write_model.book_import import ImportReport
from write_model.book_rows import MAX_STOCK


class ImportIssue(BaseModel):
    """One thing wrong with a row: the field (`loc`, empty for the row as a whole)."""

    loc: list[str | int] = Field(examples=[["price"]])
    msg: str = Field(examples=["must be a decimal number such as 12.50"])
    type: str = Field(
        examples=["value_error"],
        description="`missing`, `value_error`, `string_type`, `int_type`, `duplicate` (the "
        "ISBN is in an earlier row of the file), `conflict` (partial only: other changes to "
        "the book won every retry), ...",
    )


class ImportRowError(BaseModel):
    """A row that was not imported, and every reason why."""

    row: int = Field(description="1 for the first data row (a CSV header is not a row).")
    isbn: str | None = Field(
        description="The ISBN as 13 digits when it is valid, else as sent (cut to 40 "
        "characters), or null when the row has none."
    )
    errors: list[ImportIssue]

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> ImportRowError:
        return cls.model_validate(entry)


class BookImportReport(BaseModel):
    """What the import did: books created, books really changed, rows not imported."""

    created: int
    updated: int = Field(description="Books that really changed; an identical row is not counted.")
    failed: int
    errors: list[ImportRowError]

    @classmethod
    def of(cls, report: ImportReport) -> BookImportReport:
        return cls.model_validate(report.as_json())


class BookImportProblem(BaseModel):
    """A refused import: RFC 9457 problem details.

    On the all-or-nothing 422, `errors` lists every bad row (`row`, `isbn`, `errors`) and
    nothing was imported; on a 422 about the body as a whole (a CSV header lacking a
    column, JSON that is not an array, no `file` part), `errors` holds validation issues.
    """

    type: str = Field(examples=[PROBLEM_BASE + "validation-error"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    correlation_id: str
    errors: list[ImportRowError | ValidationIssue] | None = None
    created: int | None = Field(default=None, description="Books created (0 on a 422).")
    updated: int | None = Field(default=None, description="Books changed (0 on a 422).")
    failed: int | None = Field(default=None, description="Rows not imported.")


class BookImportItem(BaseModel):
    """One element of a JSON array import: a `POST /books` create body.

    For documentation: rows are checked one by one as they stream in, so that a bad row
    is reported with its number rather than failing the whole body.
    """

    model_config = ConfigDict(extra="ignore")

    title: str = Field(min_length=1, max_length=TITLE_MAX)
    author: str = Field(min_length=1, max_length=AUTHOR_MAX)
    isbn: str = Field(
        max_length=32,
        description="ISBN-10 or ISBN-13 with a valid checksum; hyphens and spaces allowed.",
        examples=["978-0-441-17271-9"],
    )
    price: str | float = Field(
        description="0 <= price < 1,000,000, at most two decimal places; a string or a number.",
        examples=["12.50"],
    )
    stock: int = Field(
        default=0,
        ge=0,
        le=MAX_STOCK,
        description="Left out: 0 for a new book, unchanged for an existing one.",
    )
    category: str = Field(min_length=1, max_length=CATEGORY_MAX)

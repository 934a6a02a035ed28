"""A whole catalogue import: every row checked first, then applied in batches.

`import_books` reads the rows twice through `open_rows` (a function giving a fresh
iterator over the file each time), so memory holds one batch, never the file:

1. **Check.** Every row is validated (`book_rows.validate_row`); what is kept per row is
   one dict entry, the row that first named each ISBN, to find duplicates (about 100 bytes
   a row), plus the errors. More than `max_rows` rows stops here (`TooManyRowsError`).
   All or nothing (the default): any bad row refuses the whole import
   (`ImportRefusedError`, carrying the report) before anything is written.
2. **Apply.** The valid rows go to `BookBatchImporter.import_batch`, `batch_size` at a
   time: one atomic save per batch.

Duplicate ISBNs in one file (after normalisation, so an ISBN-10 and its ISBN-13 are one) are
an error on every row after the first that names it: which of two rows staff meant is not
ours to guess. With `partial` the first applies and the later ones are reported.

Atomic means "nothing applied unless every row is valid", checked before the first write.
The batches are separate transactions (one transaction of 100,000 books would hold back
every projection while it runs), so a batch that keeps losing races with other writers after
earlier batches were saved cannot be undone: all or nothing then raises
`ImportInterruptedError` saying which rows were applied, and importing the same file again
finishes the job (rows already applied are equal to their books, so they change nothing).
With `partial`, that batch's rows are reported as failed and the import goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass, field

from write_model.book_batches import BookBatchImporter
from write_model.book_rows import BookRow, FieldIssue, RawRow, RowError, validate_row
from write_model.context import CommandContext
from write_model.errors import ConcurrencyError, ConflictError, DomainError
from write_model.isbn import isbn13_is_valid

DEFAULT_BATCH_SIZE = 500
CHECK_PROGRESS_EVERY = 1000

# A phase ("checking" or "importing"), the rows done, and the total when known.
Progress = Callable[[str, int, int | None], None]
# Rows as a generator, closed once read (so a reader lets go of its file at once).
RowStream = Generator[RawRow, None, None]
# Gives a fresh stream over the same rows each time it is called.
RowSource = Callable[[], RowStream]


@dataclass
class ImportReport:
    """What an import did (or would have done): the contract's report, plus its position."""

    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0
    position: int | None = None

    @property
    def failed(self) -> int:
        return len(self.errors)

    def as_json(self) -> dict[str, object]:
        return {
            "created": self.created,
            "updated": self.updated,
            "failed": self.failed,
            "errors": [error.as_json() for error in self.errors],
        }


class TooManyRowsError(DomainError):
    """The file has more data rows than an import may hold."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"More than {limit} rows; split the file")
        self.limit = limit


class ImportRefusedError(DomainError):
    """All or nothing, and some rows are invalid: nothing was applied."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(f"{report.failed} of {report.rows} rows are invalid; nothing was imported")
        self.report = report


class ImportInterruptedError(ConflictError):
    """All or nothing, but a batch kept losing races after earlier batches were saved."""

    def __init__(self, report: ImportReport, first_unapplied_row: int) -> None:
        super().__init__(
            f"Rows before row {first_unapplied_row} were applied ({report.created} created, "
            f"{report.updated} updated); the rest kept clashing with other changes to the "
            "same books. Import the same file again to finish: rows already applied "
            "change nothing."
        )
        self.report = report
        self.first_unapplied_row = first_unapplied_row


@dataclass
class _Checked:
    rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    # The ISBN (as an int: 13 digits) -> the row that first named it.
    first_row: dict[int, int] = field(default_factory=dict)


def _duplicate(isbn: str, first: int) -> FieldIssue:
    return FieldIssue("isbn", f"ISBN {isbn} is already in row {first} of this file", "duplicate")


def _check_all(rows: Iterator[RawRow], max_rows: int | None, progress: Progress | None) -> _Checked:
    checked = _Checked()
    for raw in rows:
        if max_rows is not None and raw.number > max_rows:
            raise TooManyRowsError(max_rows)
        checked.rows = raw.number
        result = validate_row(raw)
        isbn = result.isbn
        if isbn is not None and (isinstance(result, BookRow) or isbn13_is_valid(isbn)):
            first = checked.first_row.setdefault(int(isbn), raw.number)
            if first != raw.number:
                issues = result.issues if isinstance(result, RowError) else ()
                result = RowError(raw.number, isbn, (*issues, _duplicate(isbn, first)))
        if isinstance(result, RowError):
            checked.errors.append(result)
        if progress is not None and raw.number % CHECK_PROGRESS_EVERY == 0:
            progress("checking", raw.number, None)
    if progress is not None:
        progress("checking", checked.rows, checked.rows)
    return checked


def _valid_rows(
    rows: Generator[RawRow, None, None], first_row: dict[int, int]
) -> Iterator[BookRow]:
    """The rows to apply: valid, and the first of their ISBN."""
    with closing(rows):
        for raw in rows:
            result = validate_row(raw)
            if isinstance(result, BookRow) and first_row.get(int(result.isbn)) == raw.number:
                yield result


def _conflicted(batch: list[BookRow]) -> list[RowError]:
    issue = FieldIssue(
        None, "another change to this book won every retry; import the row again", "conflict"
    )
    return [RowError(row.number, row.isbn, (issue,)) for row in batch]


def import_books(
    importer: BookBatchImporter,
    ctx: CommandContext,
    open_rows: RowSource,
    *,
    partial: bool = False,
    max_rows: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> ImportReport:
    """Check every row, then (all valid, or `partial`) upsert the valid ones in batches."""
    with closing(open_rows()) as rows:
        checked = _check_all(rows, max_rows, progress)
    report = ImportReport(errors=checked.errors, rows=checked.rows)
    if report.errors and not partial:
        raise ImportRefusedError(report)
    to_apply = checked.rows - len(checked.errors)
    done = 0
    batch: list[BookRow] = []

    def flush() -> None:
        nonlocal done
        try:
            outcome = importer.import_batch(ctx, batch)
        except ConcurrencyError:
            if not partial:
                raise ImportInterruptedError(report, batch[0].number) from None
            report.errors.extend(_conflicted(batch))
        else:
            report.created += outcome.created
            report.updated += outcome.updated
            if outcome.position is not None:
                report.position = outcome.position
        done += len(batch)
        batch.clear()
        if progress is not None:
            progress("importing", done, to_apply)

    for row in _valid_rows(open_rows(), checked.first_row):
        batch.append(row)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    report.errors.sort(key=lambda error: error.number)
    return report

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
earlier batches were saved cannot be undone: all or nothing then stops there and raises
`ImportInterruptedError` saying where, and importing the same file again finishes the job
(rows already applied are equal to their books, so they change nothing). With `partial`,
that batch's rows are reported as failed (`conflict`) and the import goes on.

`concurrency` batches may run at once (2 on PostgreSQL: one waits on the database while
the next is built); they hold distinct ISBNs, so they never touch the same aggregates.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field

from write_model.book_batches import BatchOutcome, BookBatchImporter
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
            f"Stopped at row {first_unapplied_row}: other changes to the same books won "
            f"every retry. The rows before it were applied ({report.created} created, "
            f"{report.updated} updated, counting a batch that was under way beside it); "
            "import the same file again to finish: rows already applied change nothing."
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


class _Applier:
    """Runs batches, up to `concurrency` at once, and adds their outcomes to the report.

    Batches hold distinct ISBNs, so two in flight never touch the same aggregates; running
    two lets one wait on the database while the other is built (the store's inserts take
    no table lock). A batch that keeps losing races stops all or nothing: no batch starts
    after it, the ones under way finish, and `ImportInterruptedError` is raised.
    """

    def __init__(
        self,
        importer: BookBatchImporter,
        ctx: CommandContext,
        report: ImportReport,
        *,
        partial: bool,
        concurrency: int,
        progress: Progress | None,
        to_apply: int,
    ) -> None:
        self.importer = importer
        self.ctx = ctx
        self.report = report
        self.partial = partial
        self.concurrency = concurrency
        self.progress = progress
        self.to_apply = to_apply
        self.done = 0
        self.stopped_at: int | None = None
        self.in_flight: deque[tuple[list[BookRow], Future[BatchOutcome]]] = deque()

    def submit(self, pool: ThreadPoolExecutor, batch: list[BookRow]) -> None:
        if self.stopped_at is None:
            self.in_flight.append((batch, pool.submit(self.importer.import_batch, self.ctx, batch)))
        while len(self.in_flight) >= self.concurrency:
            self.settle_one()

    def settle_one(self) -> None:
        batch, future = self.in_flight.popleft()
        try:
            outcome = future.result()
        except ConcurrencyError:
            if not self.partial:
                first = batch[0].number
                self.stopped_at = first if self.stopped_at is None else min(first, self.stopped_at)
                return
            self.report.errors.extend(_conflicted(batch))
        else:
            self.report.created += outcome.created
            self.report.updated += outcome.updated
            if outcome.position is not None:
                self.report.position = max(self.report.position or 0, outcome.position)
        self.done += len(batch)
        if self.progress is not None:
            self.progress("importing", self.done, self.to_apply)

    def finish(self) -> None:
        while self.in_flight:
            self.settle_one()
        if self.stopped_at is not None:
            raise ImportInterruptedError(self.report, self.stopped_at)


def import_books(
    importer: BookBatchImporter,
    ctx: CommandContext,
    open_rows: RowSource,
    *,
    partial: bool = False,
    max_rows: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    concurrency: int = 1,
    progress: Progress | None = None,
) -> ImportReport:
    """Check every row, then (all valid, or `partial`) upsert the valid ones in batches,
    `concurrency` batches at a time."""
    with closing(open_rows()) as rows:
        checked = _check_all(rows, max_rows, progress)
    report = ImportReport(errors=checked.errors, rows=checked.rows)
    if report.errors and not partial:
        raise ImportRefusedError(report)
    applier = _Applier(
        importer,
        ctx,
        report,
        partial=partial,
        concurrency=max(1, concurrency),
        progress=progress,
        to_apply=checked.rows - len(checked.errors),
    )
    batch: list[BookRow] = []
    with ThreadPoolExecutor(max_workers=applier.concurrency) as pool:
        try:
            for row in _valid_rows(open_rows(), checked.first_row):
                if applier.stopped_at is not None:
                    break
                batch.append(row)
                if len(batch) >= batch_size:
                    applier.submit(pool, batch)
                    batch = []
            if batch:
                applier.submit(pool, batch)
        finally:
            applier.finish()
    report.errors.sort(key=lambda error: error.number)
    return report

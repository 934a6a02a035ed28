"""`POST /books/import` (staff): a catalogue file, upserted by ISBN, all or nothing.

The body (`text/csv`, a JSON array, or a multipart upload in the field `file`) is streamed
to a temporary file as it arrives, never held in memory; then, in a worker thread, every
row is checked (one streaming pass) and, if all are valid or `?partial=true`, applied in
batches (a second pass). See `write_model.book_import` for what "atomic" means across
batches, and `adapters.book_files` for how the files are read.

Limits: the body is at most `MAX_IMPORT_BYTES` (the request-id middleware refuses more
with 413 before reading it, or as soon as a streamed body passes it) and at most
`MAX_IMPORT_ROWS` data rows (413 as soon as the row after the last one allowed is read,
before anything is written).

The route is `async` only to read the body as a stream; all blocking work (disk, event
store) runs in the thread pool.
"""

from __future__ import annotations

import tempfile
from typing import IO, Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from adapters.aggregate_batches import batch_loader, parallel_batches
from adapters.book_files import (
    Format,
    MalformedJsonError,
    MissingColumnsError,
    NotAnArrayError,
    RowStream,
    read_rows,
    sniff_format,
)
from api.deps import StaffUser, WriteApp, command_context
from api.problems import ProblemError
from api.schemas.book_import import BookImportItem, BookImportProblem, BookImportReport
from write_model.application import Bookstore
from write_model.book_batches import BookBatchImporter
from write_model.book_import import (
    ImportInterruptedError,
    ImportRefusedError,
    ImportReport,
    TooManyRowsError,
    import_books,
)
from write_model.book_rows import FIELDS
from write_model.context import CommandContext

router = APIRouter(prefix="/books", tags=["books"])

MAX_IMPORT_BYTES = 50 * 1024 * 1024
MAX_IMPORT_ROWS = 100_000
# A multipart body holds the file and little else.
MAX_MULTIPART_FIELDS = 10

CSV_MEDIA_TYPE = "text/csv"
JSON_MEDIA_TYPE = "application/json"
MULTIPART_MEDIA_TYPE = "multipart/form-data"
_UTF8 = ("utf-8", "utf8", "us-ascii", "ascii")

CSV_EXAMPLE = ",".join(FIELDS) + "\nDune,Frank Herbert,978-0-441-17271-9,9.99,12,science fiction\n"
REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            CSV_MEDIA_TYPE: {
                "schema": {"type": "string"},
                "example": CSV_EXAMPLE,
            },
            JSON_MEDIA_TYPE: {
                "schema": {"type": "array", "items": BookImportItem.model_json_schema()},
            },
            MULTIPART_MEDIA_TYPE: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "A CSV or JSON file as above (told apart by the "
                            "part's Content-Type, else by its first character).",
                        }
                    },
                    "required": ["file"],
                }
            },
        },
    }
}

DESCRIPTION = f"""Upsert books by ISBN from a file: a new ISBN registers a book, a known one
changes that book where a value differs (a row equal to its book changes nothing, so
importing the same file twice does nothing the second time: `updated` counts real changes).

- **Body**: `text/csv` with the header `{",".join(FIELDS)}` (any order and case; other
  columns ignored; an empty `stock` cell leaves it out), a JSON array of `POST /books` create
  bodies, or `multipart/form-data` with the file in the field `file`. UTF-8; a CSV byte that
  is not UTF-8 makes its row invalid.
- **Rows** count from 1 at the first data row (the CSV header is not a row; blank lines are
  skipped; in JSON a row is its index + 1). A row without `stock` gives a new book 0 and
  leaves an existing book's stock alone. Rows follow `POST /books`' rules (no control
  characters or lone surrogates in text). An ISBN repeated in the file (an ISBN-10 and its
  ISBN-13 are one) is an error on every row after the first that names it.
- **All or nothing** (default): any invalid row answers 422 listing every bad row, and
  nothing is imported. `?partial=true` imports the valid rows and reports the others.
- Saved in batches of 500 books, each one atomic save. If a batch keeps losing races with
  other changes to its books after earlier batches were saved, all-or-nothing answers 409
  saying which rows were applied: importing the same file again finishes the job. With
  `partial`, those rows are reported as failed (`conflict`) and the rest goes on.
- At most {MAX_IMPORT_BYTES // (1024 * 1024)} MiB and {MAX_IMPORT_ROWS:,} rows, else 413.
- Answers `X-Event-Position` when it changed something.
"""


def _media_type(request: Request) -> tuple[str, str | None]:
    """The body's media type, lower-cased, and its charset parameter if any."""
    content_type = request.headers.get("content-type", "")
    media_type, _, parameters = content_type.partition(";")
    charset = None
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return media_type.strip().lower(), charset


def _unsupported(media_type: str) -> ProblemError:
    return ProblemError(
        "unsupported-media-type",
        f"Send {CSV_MEDIA_TYPE}, {JSON_MEDIA_TYPE} (an array of books) or "
        f"{MULTIPART_MEDIA_TYPE} (the file in the field `file`), not {media_type or 'nothing'}",
    )


def _missing_file(detail: str) -> ProblemError:
    return ProblemError(
        "validation-error",
        detail,
        errors=[{"loc": ["body", "file"], "msg": detail, "type": "missing"}],
    )


async def _spool_body(request: Request, spool: IO[bytes]) -> None:
    # Small writes to a local temporary file: cheaper than a hop to a thread each.
    async for chunk in request.stream():
        spool.write(chunk)


def _upload_format(upload: UploadFile) -> Format:
    media_type = (upload.content_type or "").partition(";")[0].strip().lower()
    if media_type == JSON_MEDIA_TYPE or media_type.endswith("+json"):
        return "json"
    if media_type in (CSV_MEDIA_TYPE, "application/csv"):
        return "csv"
    return sniff_format(upload.file)


def _run_import(
    app: Bookstore, ctx: CommandContext, spool: IO[bytes], file_format: Format, *, partial: bool
) -> ImportReport:
    importer = BookBatchImporter(app, batch_loader(app))

    def open_rows() -> RowStream:
        spool.seek(0)
        return read_rows(spool, file_format)

    return import_books(
        importer,
        ctx,
        open_rows,
        partial=partial,
        max_rows=MAX_IMPORT_ROWS,
        concurrency=parallel_batches(app),
    )


async def _import_file(
    app: Bookstore, ctx: CommandContext, spool: IO[bytes], file_format: Format, *, partial: bool
) -> ImportReport:
    """Run the import in the thread pool; its refusals as the problems the contract names."""
    try:
        return await run_in_threadpool(_run_import, app, ctx, spool, file_format, partial=partial)
    except MissingColumnsError as error:
        raise ProblemError(
            "validation-error",
            error.message,
            errors=[{"loc": ["body", "header"], "msg": error.message, "type": "missing"}],
        ) from None
    except NotAnArrayError as error:
        raise ProblemError(
            "validation-error",
            error.message,
            errors=[{"loc": ["body"], "msg": error.message, "type": "list_type"}],
        ) from None
    except MalformedJsonError as error:
        raise ProblemError("malformed-json", error.message) from None
    except TooManyRowsError as error:
        raise ProblemError(
            "payload-too-large", f"More than {error.limit} rows; split the file"
        ) from None
    except ImportRefusedError as error:
        report = error.report
        raise ProblemError(
            "validation-error",
            str(error),
            errors=[entry.as_json() for entry in report.errors],
            created=0,
            updated=0,
            failed=report.failed,
        ) from None
    except ImportInterruptedError as error:
        raise ProblemError(
            "version-conflict",
            str(error),
            created=error.report.created,
            updated=error.report.updated,
            first_unapplied_row=error.first_unapplied_row,
        ) from None


@router.post(
    "/import",
    name="books-import",
    response_model=BookImportReport,
    summary="Import books from CSV or JSON, upserting by ISBN (staff)",
    description=DESCRIPTION,
    openapi_extra=REQUEST_BODY,
    responses={
        200: {
            "description": "Imported (all rows, or with `partial` the valid ones).",
            "headers": {
                "X-Event-Position": {
                    "description": "Store position of the last event; only when something changed.",
                    "schema": {"type": "integer"},
                }
            },
        },
        400: {"model": BookImportProblem, "description": "JSON that does not parse"},
        401: {"model": BookImportProblem, "description": "Missing or invalid token"},
        403: {"model": BookImportProblem, "description": "Only staff may import"},
        409: {
            "model": BookImportProblem,
            "description": "A batch kept losing races after earlier batches were saved",
        },
        413: {"model": BookImportProblem, "description": "Over 50 MiB or 100,000 rows"},
        415: {"model": BookImportProblem, "description": "Not CSV, JSON or multipart"},
        422: {
            "model": BookImportProblem,
            "description": "Invalid rows (every one listed; nothing imported), a CSV header "
            "lacking a column, or a body that is not an array",
        },
    },
)
async def import_books_route(
    request: Request,
    response: Response,
    staff: StaffUser,
    app: WriteApp,
    partial: Annotated[
        bool, Query(description="Import the valid rows and report the others.")
    ] = False,
) -> BookImportReport:
    media_type, charset = _media_type(request)
    if charset is not None and charset not in _UTF8:
        raise ProblemError("unsupported-media-type", f"Send UTF-8, not {charset}")
    ctx = command_context(request, staff.id)
    if media_type == MULTIPART_MEDIA_TYPE:
        form = await request.form(max_files=1, max_fields=MAX_MULTIPART_FIELDS)
        try:
            upload = form.get("file")
            if upload is None:
                raise _missing_file("Send the file in the multipart field `file`")
            if not isinstance(upload, UploadFile):
                raise _missing_file("The field `file` must be a file part (with a filename)")
            file_format = await run_in_threadpool(_upload_format, upload)
            report = await _import_file(app, ctx, upload.file, file_format, partial=partial)
        finally:
            await form.close()
    elif media_type in (CSV_MEDIA_TYPE, JSON_MEDIA_TYPE):
        file_format = "json" if media_type == JSON_MEDIA_TYPE else "csv"
        with tempfile.TemporaryFile() as spool:
            await _spool_body(request, spool)
            report = await _import_file(app, ctx, spool, file_format, partial=partial)
    else:
        raise _unsupported(media_type)
    if report.position is not None:
        response.headers["X-Event-Position"] = str(report.position)
    return BookImportReport.of(report)

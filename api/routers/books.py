"""/books: the catalogue. Anyone browses; staff add and change books; admins remove them.

Reads come from the `book_listing` projection (`X-Projection-Position`, and
`X-Min-Event-Position` to read one's own writes); `?as_of=` and the history come from
the write model's events. Commands answer `X-Event-Position`, and the book they leave
with its strong `ETag`, which `PUT` takes back as `If-Match`.

A removal waits (at most 5 s, like a read's `X-Min-Event-Position`) until `book_listing`
has processed it before answering 204: the contract says a deleted book leaves listings
"at once, as seen by the next read", and this makes it true for every next read, by any
client, with or without the header, for the listing and the single book alike. Checking
the write model on each `GET /books/{id}` instead would cost every read an aggregate load
and still leave the book in `GET /books` pages.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy import Connection
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapters.event_history import RecordedEvent, recorded_events
from api.deps import (
    PROJECTION_WAIT_SECONDS,
    AdminUser,
    BookPages,
    JsonBody,
    Projections,
    ReadEngine,
    StaffUser,
    WriteApp,
    command_context,
    projection_waited,
)
from api.etags import etag, parse_if_match
from api.exact_json import ExactJsonRoute
from api.problems import ProblemError, problem_responses
from api.schemas.books import (
    BookCreate,
    BookEvent,
    BookHistory,
    BookPage,
    BookPublic,
    BookUpdate,
    PriceBound,
)
from api.schemas.money import money_text
from api.schemas.users import MAX_OFFSET, NO_CONTROL_CHARACTERS
from read_model.books import BookFilters, BookSort, read_listing
from read_model.books import read_book as listed_book
from read_model.positioned_cache import ListingCache
from read_model.tracking import serving_stamp
from write_model.application import Bookstore
from write_model.book import AUTHOR_MAX, CATEGORY_MAX, TITLE_MAX, Book
from write_model.errors import DuplicateKeyError, NotFoundError

log = logging.getLogger(__name__)


IMPORT_SEGMENT = "import"


def _not_the_import(request: Request) -> None:
    """`/books/import` is the import's resource (POST only), never a book called "import".

    Starlette takes the first route whose path and method match, so `PUT /books/import`
    (and GET, DELETE) reached `/books/{book_id}` and answered its 415 or 422 for a bad id.
    Each `/books/{book_id}` route checks this first, before the role and the body, and
    answers the 405 that `OPTIONS` and PATCH already got, with the import's `Allow`.
    (`/books/import/history` stays the history of a bad id: a 422.)
    """
    if request.path_params.get("book_id") == IMPORT_SEGMENT:
        raise StarletteHTTPException(405)


NotTheImport = Depends(_not_the_import)
router = APIRouter(prefix="/books", tags=["books"], route_class=ExactJsonRoute)

BOOK_LISTING = "book_listing"

_INTEGER = {"type": "integer"}
_STRING = {"type": "string"}
PROJECTION_POSITION = {
    "X-Projection-Position": {
        "description": "Store position the book_listing projection has processed.",
        "schema": _INTEGER,
    }
}
EVENT_POSITION = {
    "X-Event-Position": {"description": "Store position of the last event.", "schema": _INTEGER}
}
ETAG = {"ETag": {"description": 'The book\'s version, strong: `"<version>"`.', "schema": _STRING}}
LOCATION = {"Location": {"description": "`/books/{id}` of the new book.", "schema": _STRING}}

AUTH_ERRORS = {401: "Missing, invalid or expired token, or the account is deactivated"}
STAFF_ERRORS = {**AUTH_ERRORS, 403: "Only staff (or admins) may do this"}
ADMIN_ERRORS = {**AUTH_ERRORS, 403: "Only admins may do this"}
BODY_ERRORS = {400: "Malformed JSON", 415: "Not a JSON body"}
LAGGING = {503: "The projection did not reach X-Min-Event-Position within 5 s"}

# RFC 3339 date-time (a space for the T allowed, as its note permits). A `+` offset must be
# sent percent-encoded (%2B) in a query string, where a bare `+` means a space.
RFC3339 = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_FRACTION = re.compile(r"\.([0-9]+)")
# What a history's `data` leaves out: the library's bookkeeping, shown in its own fields.
_EVENT_BOOKKEEPING = frozenset(
    {"originator_id", "originator_version", "originator_topic", "timestamp", "metadata"}
)

BookWaited = Annotated[None, Depends(projection_waited(BOOK_LISTING))]
Text = Annotated[str | None, Query(pattern=NO_CONTROL_CHARACTERS)]


def _query_error(name: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", name), "msg": message, "type": "value_error"}])


def _book_headers(response: Response, book: Book, position: int | None = None) -> None:
    response.headers["ETag"] = etag(book.version)
    if position is not None:
        response.headers["X-Event-Position"] = str(position)


def _not_found(book_id: UUID) -> ProblemError:
    return ProblemError("not-found", f"Book {book_id} not found")


# ------------------------------------------------------------------------ reads


@router.get(
    "",
    name="books-list",
    response_model=BookPage,
    summary="Browse the catalogue: filter, sort, page",
    description=(
        "`q`: case-insensitive substring of the title or the author. `author`, `category`: "
        "exact, case-insensitive. `min_price`, `max_price`: inclusive (a string such as "
        '"12.50"). `in_stock`: `true` stock > 0, `false` stock = 0. Every sort breaks ties '
        "by id ascending, so walking the pages returns each matching book exactly once."
    ),
    responses={
        200: {"headers": PROJECTION_POSITION},
        **problem_responses({422: "Bad filter, sort, page or X-Min-Event-Position", **LAGGING}),
    },
)
def list_books(
    *,
    _: BookWaited,
    engine: ReadEngine,
    cache: BookPages,
    q: Annotated[Text, Query(max_length=TITLE_MAX)] = None,
    author: Annotated[Text, Query(max_length=AUTHOR_MAX)] = None,
    category: Annotated[Text, Query(max_length=CATEGORY_MAX)] = None,
    min_price: Annotated[PriceBound | None, Query()] = None,
    max_price: Annotated[PriceBound | None, Query()] = None,
    in_stock: bool | None = None,
    sort: BookSort = BookSort.TITLE,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Response:
    """The page, its total and `X-Projection-Position`, all of one snapshot.

    A page asked for again while `book_listing` has not moved is served as it was sent
    (`ListingCache`: the same stamp means the same rows), and a filter's total is counted
    once per stamp, not once per page: the exact count is the dearest part of the read.
    """
    if min_price is not None and max_price is not None and min_price > max_price:
        raise _query_error("min_price", "must not be above max_price")
    filters = BookFilters(
        q=q,
        author=author,
        category=category,
        min_price=min_price,
        max_price=max_price,
        in_stock=in_stock,
    )
    with engine.connect() as connection:
        return _listing_page(connection, cache, filters, sort, limit=limit, offset=offset)


def _listing_page(
    connection: Connection,
    cache: ListingCache,
    filters: BookFilters,
    sort: BookSort,
    *,
    limit: int,
    offset: int,
) -> Response:
    key = (filters, sort, limit, offset)
    stamp = None
    if cache.enabled and (cache.pages.has(key) or cache.totals.has(filters)):
        stamp = serving_stamp(connection, BOOK_LISTING)
    if stamp is not None and (body := cache.pages.get(key, stamp)) is not None:
        return _page_response(body, stamp.position)
    known_total = cache.totals.get(filters, stamp) if stamp is not None else None
    read = read_listing(
        connection, BOOK_LISTING, filters, sort, limit=limit, offset=offset,
        count=known_total is None,
    )  # fmt: skip
    if read.total is None and read.stamp != stamp:  # moved since: count at the page's stamp
        read = read_listing(
            connection, BOOK_LISTING, filters, sort, limit=limit, offset=offset, count=True
        )
    total = read.total if read.total is not None else known_total
    assert total is not None  # counted unless known at the page's very stamp
    body = (
        BookPage(
            items=[BookPublic.of_row(row) for row in read.items],
            total=total,
            limit=limit,
            offset=offset,
        )
        .model_dump_json()
        .encode()
    )
    if read.stamp is None:
        return _page_response(body, 0)
    if cache.enabled:
        cache.pages.put(key, read.stamp, body)
        cache.totals.put(filters, read.stamp, total)
    return _page_response(body, read.stamp.position)


def _page_response(body: bytes, position: int) -> Response:
    return Response(
        body,
        media_type="application/json",
        headers={"X-Projection-Position": str(position)},
    )


def _as_of_moment(as_of: str) -> datetime:
    text = as_of.upper()
    # Python reads at most six fraction digits; RFC 3339 allows more (nanoseconds).
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6], text, count=1)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise _query_error("as_of", "is not a valid RFC 3339 date-time") from None


def _book_as_of(app: Bookstore, book_id: UUID, moment: datetime) -> Book:
    """The book after its events up to `moment` (the longest prefix not after it)."""
    version = 0
    for recorded in recorded_events(app, book_id):
        if recorded.event.timestamp > moment:
            break
        version = recorded.event.originator_version
    if version == 0:
        raise _not_found(book_id)  # not registered yet then (or no such book at all)
    try:
        return app.get_book(book_id, version=version)
    except NotFoundError:
        raise _not_found(book_id) from None  # removed by then


@router.get(
    "/{book_id}",
    name="books-read",
    dependencies=[NotTheImport],
    response_model=BookPublic,
    summary="One book, with its version as ETag; `?as_of=` for the book as it was then",
    description=(
        "From the `book_listing` projection, with `X-Projection-Position`. With `as_of` "
        "(RFC 3339, e.g. `2026-11-26T08:40:13Z`; send a `+` offset as `%2B`), the book as "
        "it was at that time, folded from its events in the write model: 404 if it did "
        "not exist yet or had been deleted by then. Its ETag is the version it had then."
    ),
    responses={
        200: {"headers": {**PROJECTION_POSITION, **ETAG}},
        **problem_responses(
            {404: "No such book (or removed)", 422: "Bad id, as_of or X-Min-Event-Position"}
            | LAGGING
        ),
    },
)
def read_book(
    *,
    book_id: UUID,
    response: Response,
    _: BookWaited,
    engine: ReadEngine,
    app: WriteApp,
    as_of: Annotated[
        str | None,
        Query(pattern=RFC3339, description="RFC 3339 time: the book as it was then."),
    ] = None,
) -> BookPublic:
    if as_of is not None:
        book = _book_as_of(app, book_id, _as_of_moment(as_of))
        response.headers["ETag"] = etag(book.version)
        return BookPublic.of(book)
    with engine.connect() as connection:
        stamp, row = listed_book(connection, BOOK_LISTING, book_id)
    if row is None:
        raise _not_found(book_id)
    response.headers["ETag"] = etag(row["version"])
    response.headers["X-Projection-Position"] = str(stamp.position if stamp else 0)
    return BookPublic.of_row(row)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return money_text(value)  # every decimal of a book's events is money
    if isinstance(value, UUID):
        return str(value)
    return value


def _history_item(recorded: RecordedEvent) -> BookEvent:
    event = recorded.event
    return BookEvent(
        position=recorded.position,
        type=type(event).__qualname__,
        version=event.originator_version,
        timestamp=event.timestamp,
        data={
            name: _jsonable(value)
            for name, value in vars(event).items()
            if name not in _EVENT_BOOKKEEPING
        },
        metadata=dict(getattr(event, "metadata", None) or {}),
    )


@router.get(
    "/{book_id}/history",
    name="books-history",
    response_model=BookHistory,
    summary="A book's events, oldest first (staff); a removed book's too",
    responses=problem_responses({**STAFF_ERRORS, 404: "No such book", 422: "Bad id"}),
)
def read_book_history(*, book_id: UUID, staff: StaffUser, app: WriteApp) -> BookHistory:
    del staff  # checked by the dependency
    recorded = recorded_events(app, book_id)
    if not recorded or not isinstance(recorded[0].event, Book.Event):
        raise _not_found(book_id)  # nothing, or another aggregate's id
    return BookHistory(items=[_history_item(item) for item in recorded])


# ------------------------------------------------------------------------ commands


@router.post(
    "",
    name="books-create",
    status_code=201,
    dependencies=[JsonBody],
    response_model=BookPublic,
    summary="Add a book (staff)",
    responses={
        201: {"headers": {**LOCATION, **ETAG, **EVENT_POSITION}},
        **problem_responses(
            {
                **STAFF_ERRORS,
                **BODY_ERRORS,
                409: "A book with this ISBN is already in the catalogue",
                422: "Invalid body",
            }
        ),
    },
)
def create_book(
    *,
    body: BookCreate,
    request: Request,
    response: Response,
    staff: StaffUser,
    app: WriteApp,
) -> BookPublic:
    try:
        created = app.register_book(command_context(request, staff.id), **body.model_dump())
    except DuplicateKeyError:
        raise ProblemError(
            "isbn-taken", f"A book with ISBN {body.isbn} is already in the catalogue"
        ) from None
    book = app.get_book(created.id)
    response.headers["Location"] = f"/books/{created.id}"
    _book_headers(response, book, created.position)
    return BookPublic.of(book)


def _expected_version(app: Bookstore, book_id: UUID, if_match: list[str]) -> int | None:
    """The version `change_book` must find, from If-Match; None when unconditional.

    One tag is checked by the command itself, atomically with its save. With `*` or
    several tags, the book's current version is the one expected, if the header accepts it.
    """
    condition = parse_if_match(if_match)
    if condition is None:
        return None
    if not condition.any_version and len(condition.versions) == 1:
        (version,) = condition.versions
        return version
    current = app.get_book(book_id).version
    if not condition.accepts(current):
        raise ProblemError(
            "precondition-failed",
            f"Book {book_id} is at version {current}, which If-Match does not name",
        )
    return current


@router.put(
    "/{book_id}",
    name="books-update",
    dependencies=[NotTheImport, JsonBody],
    response_model=BookPublic,
    summary="Change any of a book's fields (staff); If-Match guards against lost updates",
    description=(
        'Send `If-Match: "<version>"` (the ETag) to change the book only if nobody changed '
        "it since: 412 otherwise. `*` and lists of tags work as RFC 9110 says; weak tags "
        "never match. A value that is not an entity tag (`3` without quotes) is a 422."
    ),
    responses={
        200: {"headers": {**ETAG, **EVENT_POSITION}},
        **problem_responses(
            {
                **STAFF_ERRORS,
                **BODY_ERRORS,
                404: "No such book (or removed)",
                409: "Another book has this ISBN",
                412: "If-Match names another version: the book changed meanwhile",
                422: "Invalid id, body or If-Match",
            }
        ),
    },
)
def update_book(
    *,
    book_id: UUID,
    body: BookUpdate,
    request: Request,
    response: Response,
    staff: StaffUser,
    app: WriteApp,
    if_match: Annotated[
        str | None,
        Header(description='The ETag read before, e.g. `"3"`; `*` for any version.'),
    ] = None,
) -> BookPublic:
    del if_match  # documented here; every field line is read from the request below
    expected = _expected_version(app, book_id, request.headers.getlist("if-match"))
    try:
        position = app.change_book(
            command_context(request, staff.id),
            book_id,
            expected_version=expected,
            **body.model_dump(exclude_unset=True),
        )
    except DuplicateKeyError:
        raise ProblemError(
            "isbn-taken", f"Another book has ISBN {body.isbn} in the catalogue"
        ) from None
    book = app.get_book(book_id)
    _book_headers(response, book, position)
    return BookPublic.of(book)


@router.delete(
    "/{book_id}",
    name="books-delete",
    dependencies=[NotTheImport],
    status_code=204,
    response_class=Response,
    summary="Remove a book (admin); it leaves the listing before this answers",
    description=(
        "Waits (at most 5 s) until `book_listing` has processed the removal, so the next "
        "read by anyone no longer lists the book. Past orders keep their lines; carts keep "
        "the line, marked unavailable. The ISBN becomes free. A second delete is a 404."
    ),
    responses={
        204: {"headers": EVENT_POSITION},
        **problem_responses({**ADMIN_ERRORS, 404: "No such book (or removed)", 422: "Bad id"}),
    },
)
def delete_book(
    *,
    book_id: UUID,
    request: Request,
    admin: AdminUser,
    app: WriteApp,
    projections: Projections,
) -> Response:
    position = app.remove_book(command_context(request, admin.id), book_id)
    if not projections.wait_for(BOOK_LISTING, position, timeout=PROJECTION_WAIT_SECONDS):
        # The removal stands (it is in the log); the listing drops the book when the
        # projection catches up, and X-Min-Event-Position lets a client wait for that.
        log.warning(
            "book %s removed at position %s; book_listing not there after %s s",
            book_id,
            position,
            PROJECTION_WAIT_SECONDS,
        )
    return Response(status_code=204, headers={"X-Event-Position": str(position)})

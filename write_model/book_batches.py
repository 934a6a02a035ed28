"""The batch command of a catalogue import: upsert many books by ISBN in one atomic save.

`BookBatchImporter.import_batch` takes up to a few hundred valid rows with distinct ISBNs,
loads their ISBN index aggregates and the books those point to, registers the new books
(claiming their ISBNs), changes the existing ones where a value differs, and saves every
changed aggregate, index aggregates included, in one `save`: one transaction, with
optimistic concurrency on each aggregate. A row equal to its book records nothing, so a
re-import writes no event. A batch that loses a race (a book changed, or an ISBN claimed,
since it was loaded) is run again from the loading, as `retrying_on_conflict` does for
single commands.

Loading is the cost that matters: one SELECT per aggregate would spend most of an import
on round trips. So the importer takes a `load_many` function (ids -> aggregates found); the
default asks the repository one id at a time (right for the in-memory store of unit tests),
and `adapters.aggregate_batches` gives one that reads a whole batch in two queries.

Kept out of `application.py` (which keeps one method per single command) in a module of
its own; it uses the application's own save, lookup and key helpers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from write_model.application import ISBN_KEY, Bookstore
from write_model.book import Book
from write_model.book_rows import BookRow
from write_model.context import CommandContext
from write_model.errors import ConcurrencyError
from write_model.ids import key_id
from write_model.key_index import KeyIndex

AggregateLoader = Callable[[Sequence[UUID]], Mapping[UUID, Aggregate]]

BASE_BACKOFF_SECONDS = 0.002


def one_by_one(app: Bookstore) -> AggregateLoader:
    """A loader asking the repository for each id in turn (ids not found are left out)."""

    def load(ids: Sequence[UUID]) -> dict[UUID, Aggregate]:
        found: dict[UUID, Aggregate] = {}
        for aggregate_id in ids:
            try:
                found[aggregate_id] = app.repository.get(aggregate_id)
            except AggregateNotFoundError:
                continue
        return found

    return load


@dataclass(frozen=True)
class BatchOutcome:
    """What one batch did: books created and really changed; `position` None if nothing."""

    created: int
    updated: int
    position: int | None


class _TornReadError(Exception):
    """An index named a book that was then found removed: load the batch again."""


class BookBatchImporter:
    """Upserts batches of valid book rows by ISBN, each batch in one atomic save."""

    def __init__(
        self,
        app: Bookstore,
        load_many: AggregateLoader | None = None,
        *,
        max_attempts: int | None = None,
    ) -> None:
        self.app = app
        self.load_many = load_many or one_by_one(app)
        self.max_attempts = max_attempts or app.max_attempts

    def import_batch(self, ctx: CommandContext, rows: Sequence[BookRow]) -> BatchOutcome:
        """Upsert `rows` (distinct ISBNs) atomically; retried from the loading after a race.

        Raises `ConcurrencyError` when the batch lost every attempt.
        """
        for attempt in range(self.max_attempts):
            try:
                return self._attempt(ctx, rows)
            except (IntegrityError, _TornReadError):
                if attempt == self.max_attempts - 1:
                    break
                # Jitter, not cryptography.
                time.sleep(random.uniform(0, BASE_BACKOFF_SECONDS * 2**attempt))  # noqa: S311
        raise ConcurrencyError("The import kept losing races with other changes to these books")

    def _attempt(self, ctx: CommandContext, rows: Sequence[BookRow]) -> BatchOutcome:
        index_ids = [key_id(ISBN_KEY, row.isbn) for row in rows]
        indexes = {
            aggregate_id: aggregate
            for aggregate_id, aggregate in self.load_many(index_ids).items()
            if isinstance(aggregate, KeyIndex)
        }
        owners = [index.owner_id for index in indexes.values() if index.owner_id is not None]
        books = {
            aggregate_id: aggregate
            for aggregate_id, aggregate in self.load_many(owners).items()
            if isinstance(aggregate, Book)
        }
        changed: list[Aggregate] = []
        created = updated = 0
        for row, index_id in zip(rows, index_ids, strict=True):
            index = indexes.get(index_id)
            owner = index.owner_id if index is not None else None
            if owner is None:
                book = _register(row)
                if index is None:
                    index = KeyIndex(kind=ISBN_KEY, key=book.isbn, owner_id=book.id)
                else:
                    index.claim(book.id)  # a released ISBN (its book was removed)
                changed += [book, index]
                created += 1
                continue
            existing = books.get(owner)
            if existing is None or existing.removed:
                # An index names a live book until that book's removal releases it, in the
                # same save: this is a torn read, so load again.
                raise _TornReadError(row.isbn)
            if _apply(existing, row):
                changed.append(existing)
                updated += 1
        if not changed:
            return BatchOutcome(0, 0, None)
        return BatchOutcome(created, updated, self.app._save(ctx, *changed))


def _register(row: BookRow) -> Book:
    return Book.register(
        title=row.title,
        author=row.author,
        isbn=row.isbn,
        price=row.price,
        stock=row.stock if row.stock is not None else 0,
        category=row.category,
    )


def _apply(book: Book, row: BookRow) -> bool:
    """Bring the book to the row's values; True if anything really changed."""
    details = book.change_details(
        title=row.title, author=row.author, price=row.price, category=row.category
    )
    stock = row.stock is not None and book.correct_stock(row.stock)
    return details or stock

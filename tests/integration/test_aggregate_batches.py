"""Loading many aggregates in two queries gives what the repository gives, one by one."""

from __future__ import annotations

from uuid import uuid4

from adapters.aggregate_batches import IDS_PER_QUERY, batch_loader
from bookstore.bootstrap import Container
from tests.factories import book_create_body, ctx, new_book, new_customer
from write_model.application import ISBN_KEY
from write_model.ids import key_id


def test_a_batch_load_equals_the_repository_s_aggregates_snapshots_included(
    container: Container,
) -> None:
    app = container.write_app
    plain = new_book(app)
    # Book snapshots every 100 versions: this one is folded from a snapshot and the rest.
    snapshotted = new_book(app, stock=0)
    for _ in range(130):
        app.restock_book(ctx(), snapshotted, 1)
    removed = app.register_book(ctx(), **book_create_body()).id
    isbn = app.get_book(removed).isbn
    app.remove_book(ctx(), removed)
    reclaimed = app.register_book(ctx(), **book_create_body(isbn=isbn)).id
    assert app.snapshots is not None
    assert list(app.snapshots.get(snapshotted))  # folded from a snapshot, then events
    user = new_customer(app)
    ids = [plain, snapshotted, key_id(ISBN_KEY, isbn), reclaimed, user, uuid4()]

    loaded = batch_loader(app)(ids)

    assert set(loaded) == set(ids[:-1])
    for aggregate_id, aggregate in loaded.items():
        expected = app.repository.get(aggregate_id)
        assert type(aggregate) is type(expected)
        assert aggregate.__dict__ == expected.__dict__
    assert loaded[snapshotted].__dict__["stock"] == 130
    assert loaded[key_id(ISBN_KEY, isbn)].__dict__["owner_id"] == reclaimed


def test_more_ids_than_one_query_takes_are_loaded_in_several(container: Container) -> None:
    app = container.write_app
    books = [new_book(app) for _ in range(3)]
    ids = [uuid4() for _ in range(IDS_PER_QUERY + 5)] + books
    assert set(batch_loader(app)(ids)) == set(books)

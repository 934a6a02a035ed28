"""Event versioning: a `Book.Registered` stored by an older release (v1, no `language`)
reads as v2 everywhere: the aggregate, the projections, `GET /events` and the export."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.domain import Snapshot
from eventsourcing.persistence import StoredEvent
from fastapi.testclient import TestClient

from adapters.event_export import ExportFormat, export_events
from api.app import create_app
from bookstore.bootstrap import Container
from read_model.books import get_book as listed_book
from tests.api.conftest import new_account
from tests.factories import ctx
from write_model.application import Bookstore
from write_model.book import DEFAULT_LANGUAGE, Book

V1_FIELDS = {"title", "author", "isbn", "price", "stock", "category"}


def store_v1_registration(app: Bookstore) -> UUID:
    """Write a book's registration as the release before `language` did: no such field
    and no `class_version` in the stored state (the library stores it only above 1)."""
    book = Book.register(
        title="Old Times",
        author="Ann Archive",
        isbn="9780306406157",
        price=Decimal("8.25"),
        stock=4,
        category="history",
    )
    (event,) = book.collect_events()
    object.__setattr__(event, "metadata", ctx().as_metadata())
    stored = app.mapper.to_stored_event(event)
    state = json.loads(stored.state)
    del state["language"], state["class_version"]
    app.recorder.insert_events(
        [
            StoredEvent(
                originator_id=stored.originator_id,
                originator_version=stored.originator_version,
                topic=stored.topic,
                state=json.dumps(state).encode(),
            )
        ]
    )
    return book.id


def stored_state(app: Bookstore, book_id: UUID) -> dict[str, Any]:
    (stored,) = app.recorder.select_events(book_id)
    state: dict[str, Any] = json.loads(stored.state)
    return state


def test_the_stored_row_is_the_v1_shape(container: Container) -> None:
    app = container.write_app
    book_id = store_v1_registration(app)

    state = stored_state(app, book_id)

    assert set(state) >= V1_FIELDS
    assert "language" not in state
    assert "class_version" not in state


def test_the_write_model_reads_a_v1_registration_as_v2(container: Container) -> None:
    app = container.write_app
    book_id = store_v1_registration(app)

    book = app.get_book(book_id)

    assert book.language == DEFAULT_LANGUAGE
    assert (book.title, book.price, book.stock) == ("Old Times", Decimal("8.25"), 4)
    # The upcast book takes commands like any other.
    app.change_book(ctx(), book_id, title="New Times")
    assert app.get_book(book_id).title == "New Times"
    assert app.get_book(book_id, version=1).language == DEFAULT_LANGUAGE


def test_a_new_registration_is_stored_as_v2(container: Container) -> None:
    app = container.write_app
    book_id = app.register_book(
        ctx(),
        title="New",
        author="N. Ew",
        isbn="9780441013593",
        price=Decimal(1),
        category="fiction",
    ).id

    state = stored_state(app, book_id)

    assert state["class_version"] == 2
    assert state["language"] == DEFAULT_LANGUAGE


def test_the_projections_catch_up_over_a_v1_registration(container: Container) -> None:
    app = container.write_app
    book_id = store_v1_registration(app)
    runner = container.projections.runner

    result = runner.catch_up_fully("book_listing")

    assert result.caught_up, result
    with container.read_engine.connect() as connection:
        row = listed_book(connection, book_id)
    assert row is not None
    assert (row["title"], row["price"], row["stock"]) == ("Old Times", Decimal("8.25"), 4)


def test_get_events_shows_a_v1_registration_with_its_language(container: Container) -> None:
    book_id = store_v1_registration(container.write_app)

    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        admin = new_account(client, container, "admin")
        response = client.get(
            "/events",
            params={"aggregate_id": str(book_id)},
            headers=admin.headers,
        )

    assert response.status_code == 200, response.text
    (item,) = response.json()["items"]
    assert item["type"] == "Book.Registered"
    assert item["data"]["language"] == DEFAULT_LANGUAGE
    assert item["data"]["price"] == "8.25"


def test_the_export_upcasts_a_v1_registration(container: Container, tmp_path: Path) -> None:
    book_id = store_v1_registration(container.write_app)
    out = tmp_path / "events.jsonl"

    export_events(container.write_app, out, ExportFormat.JSONL)

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    (registered,) = [row for row in rows if row["aggregate_id"] == str(book_id)]
    assert registered["data"]["language"] == DEFAULT_LANGUAGE
    assert V1_FIELDS | {"language"} == set(registered["data"])


def test_a_book_snapshot_from_before_language_is_upcast_too(container: Container) -> None:
    """Books are snapshotted every 100 events: an old snapshot lacks `language` as well."""
    app = container.write_app
    book_id = store_v1_registration(app)
    assert app.snapshots is not None
    book = Book.register(
        title="As Snapshotted",
        author="Ann Archive",
        isbn="9780306406157",
        price=Decimal("8.25"),
        stock=4,
        category="history",
    )
    object.__setattr__(book, "_id", book_id)
    book.collect_events()
    # The snapshot as the release before `language` took it: neither the field nor a version.
    stored = app.mapper.to_stored_event(Snapshot.take(book))
    state = json.loads(stored.state)
    del state["state"]["language"], state["state"]["class_version"]
    app.snapshots.recorder.insert_events(
        [
            StoredEvent(
                originator_id=book_id,
                originator_version=1,
                topic=stored.topic,
                state=json.dumps(state).encode(),
            )
        ]
    )

    loaded = app.repository.get(book_id)
    assert loaded.title == "As Snapshotted"  # so it came from the snapshot, not the event
    assert loaded.language == DEFAULT_LANGUAGE

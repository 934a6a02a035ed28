"""Saves land in the bookstore's events table whatever else shares its PostgreSQL schema.

The library's lock-free insert function is named after the originator id type alone
(`es_insert_events_uuid`), and its body names one events table: any other eventsourcing
application that creates its tables in the same schema replaces it with one writing to
its own table. Found when a benchmark's baseline application shared the bench's database:
every command after it answered success, and the book or user it had just made was then
"not found", its events in the other application's table.
"""

from __future__ import annotations

from uuid import UUID

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from adapters.engines import event_store_env
from bookstore import bootstrap
from tests.conftest import make_settings
from tests.factories import book_payload, ctx

pytestmark = pytest.mark.postgres


class Neighbour(Application[UUID]):
    """Another application, with a table of its own, in the same database and schema."""

    name = "neighbour"


def test_a_neighbouring_application_cannot_take_the_bookstores_saves(postgres_url: str) -> None:
    settings = make_settings(postgres_url)
    bootstrap.migrate(settings)
    container = bootstrap.build(settings)
    neighbour = Neighbour(env=event_store_env(postgres_url, create_table=True, pool_size=2))
    try:
        neighbour.save(Aggregate())
        app = container.write_app
        created = app.register_book(ctx(), **book_payload(title="Ours"))
        assert app.get_book(created.id).title == "Ours"
        assert created.id in {n.originator_id for n in app.notification_log.select(1, 10)}
        assert len(neighbour.notification_log.select(1, 10)) == 1  # its own save only
    finally:
        neighbour.close()
        container.close()

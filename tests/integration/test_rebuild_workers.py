"""A rebuild's load folded by worker processes (PostgreSQL): each reads its own share of
every batch from the event store, and together they write what one process writes."""

from __future__ import annotations

import pytest

from bookstore.bootstrap import Container
from projections.rebuild import RebuildOptions, Rebuilds
from projections.runner import Runner
from tests.factories import book_payload, ctx
from tests.integration.projection_support import save_books
from tests.integration.rebuild_support import POISON_TITLE, PickyBookListing, versioned_tables
from tests.integration.test_rebuild import NAMES, catch_up_all, rows_of, some_history

pytestmark = pytest.mark.postgres

# Two processes from the first event on, in batches small enough that an aggregate's
# events fall into several of them.
WORKERS = RebuildOptions(batch_size=40, workers=2, min_events_for_workers=0)


def test_worker_processes_rebuild_every_projection_to_the_rows_the_runner_wrote(
    postgres_container: Container,
) -> None:
    container = postgres_container
    some_history(container)
    before = rows_of(container.read_engine)
    rebuilds = Rebuilds(container.projections.runner, WORKERS)

    for name in NAMES:
        rebuilds.request(name)
        finished = rebuilds.run(name)
        assert (finished.state, finished.last_error) == ("done", None)

    assert rows_of(container.read_engine) == before
    assert versioned_tables(container.read_engine) == []


def test_worker_processes_fail_a_rebuild_at_its_poison_event(
    postgres_container: Container,
) -> None:
    container = postgres_container
    app = container.write_app
    save_books(app, 60, events_per_book=2)
    poison = app.register_book(ctx(), **book_payload(title=POISON_TITLE)).position
    save_books(app, 60, events_per_book=2)
    catch_up_all(container.projections.runner)
    before = rows_of(container.read_engine)
    newer = Runner(app, container.read_engine, [PickyBookListing()])
    rebuilds = Rebuilds(newer, WORKERS)
    rebuilds.request("book_listing")

    finished = rebuilds.run("book_listing")

    assert (finished.state, finished.error_position) == ("failed", poison - 1)
    assert "cannot list 'Poison'" in (finished.last_error or "")
    assert rows_of(container.read_engine) == before
    assert versioned_tables(container.read_engine) == []

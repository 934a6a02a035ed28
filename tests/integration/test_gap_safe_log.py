"""Writers take no table lock, and projections still apply every event exactly once.

On PostgreSQL, events are inserted without the library's per-insert table lock, so store
positions do not commit in order: a transaction can hold position 4 open while position 5
commits. Projections read only what lies below the commit watermark, in
`(tx_id, notification_id)` order; these tests open such gaps on purpose, with raw
connections that are not the application's, in both orders of transaction ids.
"""

from __future__ import annotations

import multiprocessing
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from bookstore import bootstrap
from bookstore.bootstrap import Container
from projections.book_listing import BookListingProjection
from projections.runner import Runner
from projections.status import projection_status
from read_model.books import get_book
from read_model.tables import book_listing, projection_tracking
from read_model.tracking import LogPosition, get_tracking
from tests.conftest import make_settings
from tests.factories import book_payload, ctx
from tests.integration.gap_safe_support import (
    CHANGES_PER_BOOK,
    RawWriter,
    ReceivingProjection,
    new_books,
    order_metadata,
    received_versions,
    run_runner,
    run_writer,
    stored,
)
from tests.integration.projection_support import (
    CountingProjection,
    application_counts,
    applications_metadata,
    engine_for,
    rebuild_book_listing,
    table_rows,
)
from tests.services import fresh_postgres_database

pytestmark = pytest.mark.postgres

# A batch that finds only events held back by an open transaction polls for them before
# giving up: briefly where a test holds a transaction open on purpose and expects no
# progress; long enough elsewhere for other databases' transactions on this server (the
# watermark is cluster-wide) to end.
SHORT_WAIT = 0.2
LONG_WAIT = 30.0


@pytest.fixture
def postgres_container(postgres_url: str) -> Iterator[Container]:
    settings = make_settings(postgres_url)
    bootstrap.migrate(settings)
    wired = bootstrap.build(settings)
    yield wired
    wired.close()


@pytest.fixture
def writers(postgres_url: str) -> Iterator[list[RawWriter]]:
    """Two raw connections; whatever they leave open is rolled back at the end."""
    opened = [RawWriter(postgres_url), RawWriter(postgres_url)]
    yield opened
    for writer in opened:
        writer.close()


def book_runner(container: Container, *, wait: float = LONG_WAIT) -> Runner:
    return Runner(
        container.write_app,
        container.read_engine,
        [BookListingProjection()],
        held_back_wait_seconds=wait,
    )


def listed_titles(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(select(book_listing.c.title)).scalars())


def log_position(engine: Engine, name: str) -> LogPosition | None:
    with engine.connect() as connection:
        found = get_tracking(connection, name)
    return found.log_position if found else None


# ----------------------------------------------------------------------------- the gap


@pytest.mark.parametrize("older", ["the open one", "the committed one"])
def test_an_open_transaction_holding_a_lower_position_is_never_skipped_nor_passed(
    postgres_container: Container, writers: list[RawWriter], older: str
) -> None:
    """The reproduced bug: position 4 held open while 5 commits; catch-up moved to 5 and 4
    was never applied. Here with either of the two transactions the older one."""
    app = postgres_container.write_app
    engine = postgres_container.read_engine
    runner = book_runner(postgres_container)
    app.register_book(ctx(), **book_payload(title="Before"))
    assert runner.catch_up_fully("book_listing").caught_up
    holding, committing = writers
    if older == "the open one":
        open_tx = holding.take_transaction_id()
        committing.take_transaction_id()
    else:
        committing.take_transaction_id()
        open_tx = holding.take_transaction_id()
    (low,) = holding.insert(stored(app, *new_books(1, title="Low")))
    (high,) = committing.insert(stored(app, *new_books(1, title="High")))
    committing.commit()
    assert low < high
    # Nothing may pass the open transaction, however long the runner waits for it: no
    # need to wait long where the held-back event is the point.
    runner.held_back_wait_seconds = SHORT_WAIT if older == "the open one" else LONG_WAIT

    while_open = runner.catch_up_fully("book_listing")

    passed = log_position(engine, "book_listing")
    assert passed is not None
    assert passed < LogPosition(open_tx, low)  # never past the open transaction's event
    assert "Low" not in listed_titles(engine)
    if older == "the open one":
        # High's transaction is younger than the open one: held back, neither applied
        # nor passed, and a client waiting for it keeps waiting.
        assert while_open.held_back
        assert "High" not in listed_titles(engine)
        assert not postgres_container.wait_for_position("book_listing", high, timeout=0.3)
    else:
        # High's transaction began before the open one: nothing can commit below it now.
        assert "High" in listed_titles(engine)
        assert postgres_container.wait_for_position("book_listing", high, timeout=5)

    holding.commit()
    runner.held_back_wait_seconds = LONG_WAIT
    after = runner.catch_up_fully("book_listing", batch_size=1)

    assert after.caught_up
    assert listed_titles(engine) == {"Before", "Low", "High"}
    assert postgres_container.wait_for_position("book_listing", high, timeout=5)
    assert postgres_container.wait_for_position("book_listing", low, timeout=5)
    assert runner.catch_up_fully("book_listing").applied == 0


def test_the_higher_transaction_may_commit_its_event_first_and_both_still_arrive(
    postgres_container: Container, writers: list[RawWriter]
) -> None:
    """Reading in store-position order would apply 5 and pass 4 here; in transaction order
    the projection waits for the older transaction, then applies both."""
    app = postgres_container.write_app
    engine = postgres_container.read_engine
    runner = book_runner(postgres_container, wait=SHORT_WAIT)
    older, younger = writers
    older_tx = older.take_transaction_id()
    (first_position,) = younger.insert(stored(app, *new_books(1, title="Younger")))
    younger.commit()
    (second_position,) = older.insert(stored(app, *new_books(1, title="Older")))

    assert runner.catch_up_fully("book_listing").applied == 0
    assert listed_titles(engine) == set()

    older.commit()
    runner.held_back_wait_seconds = LONG_WAIT
    result = runner.catch_up_fully("book_listing")

    assert (result.applied, result.caught_up) == (2, True)
    assert result.position == max(first_position, second_position)
    assert listed_titles(engine) == {"Older", "Younger"}
    assert result.log_position > LogPosition(older_tx, second_position)


def test_a_raw_insert_with_no_lock_by_another_connection_is_applied_exactly_once(
    postgres_container: Container, writers: list[RawWriter]
) -> None:
    app = postgres_container.write_app
    engine = postgres_container.read_engine
    applications_metadata.create_all(engine)
    runner = Runner(
        app, engine, [CountingProjection(), BookListingProjection()], held_back_wait_seconds=1
    )
    outsider, _ = writers
    app.register_book(ctx(), **book_payload(title="App one"))
    outsider.insert(stored(app, *new_books(1, title="Outsider")))
    app.register_book(ctx(), **book_payload(title="App two"))  # commits while the raw one is open
    for name in runner.names:
        runner.catch_up_fully(name)
    outsider.commit()
    app.register_book(ctx(), **book_payload(title="App three"))
    runner.held_back_wait_seconds = LONG_WAIT

    for _ in range(2):
        for name in runner.names:
            assert runner.catch_up_fully(name).caught_up

    counts = application_counts(engine)
    # Book events only: registering through the application also saves an ISBN index.
    assert counts["total"] == counts["distinct"] == 4
    assert counts["doubled"] == 0
    assert listed_titles(engine) == {"App one", "Outsider", "App two", "App three"}


def test_a_read_your_writes_wait_ends_once_the_held_back_event_is_applied(
    postgres_container: Container, writers: list[RawWriter]
) -> None:
    app = postgres_container.write_app
    holder, _ = writers
    holder.take_transaction_id()  # an older transaction, still open
    book = app.register_book(ctx(), **book_payload(title="Mine"))
    postgres_container.projections.runner.held_back_wait_seconds = SHORT_WAIT
    postgres_container.projections.runner.catch_up_fully("book_listing")

    assert not postgres_container.wait_for_position("book_listing", book.position, timeout=0.5)

    holder.commit()
    postgres_container.projections.runner.held_back_wait_seconds = LONG_WAIT
    postgres_container.projections.runner.catch_up_fully("book_listing")

    assert postgres_container.wait_for_position("book_listing", book.position, timeout=5)
    with postgres_container.read_engine.connect() as connection:
        assert get_book(connection, book.id) is not None


def test_status_names_the_open_transaction_holding_the_projection_back(
    postgres_container: Container, writers: list[RawWriter]
) -> None:
    app = postgres_container.write_app
    holder, _ = writers
    holder.take_transaction_id()
    started = time.time()
    app.register_book(ctx(), **book_payload())
    runner = book_runner(postgres_container, wait=SHORT_WAIT)
    runner.catch_up_fully("book_listing")

    status = projection_status(runner, "book_listing", held_back_threshold=0)

    assert (status.state, status.lag_events) == ("catching_up", 2)
    assert status.held_back_by is not None
    # The oldest open transaction in the cluster: ours, or one older still (another
    # database's tests may share this server).
    held = status.held_back_by
    assert held.pid == holder.pid or (
        held.started_at is not None and held.started_at.timestamp() <= started
    )
    assert f"open {held.age_seconds:.0f} s" in held.describe()
    assert "held_back_by" in status.as_dict()

    holder.commit()
    runner.held_back_wait_seconds = LONG_WAIT
    runner.catch_up_fully("book_listing")
    caught_up = projection_status(runner, "book_listing", held_back_threshold=0)
    assert (caught_up.state, caught_up.lag_events, caught_up.held_back_by) == (
        "up_to_date",
        0,
        None,
    )
    assert "held_back_by" not in caught_up.as_dict()


def test_a_projection_tracked_before_the_pair_resumes_from_its_old_position(
    postgres_container: Container,
) -> None:
    """Rows written before `log_tx_id`/`log_event_id` existed have only a position."""
    app = postgres_container.write_app
    engine = postgres_container.read_engine
    runner = book_runner(postgres_container)
    app.register_book(ctx(), **book_payload(title="Old"))
    runner.catch_up_fully("book_listing")
    old_head = app.head()
    with engine.begin() as connection:
        connection.execute(projection_tracking.update().values(log_tx_id=None, log_event_id=None))
    app.register_book(ctx(), **book_payload(title="New"))

    assert postgres_container.wait_for_position("book_listing", old_head, timeout=1)
    result = runner.catch_up_fully("book_listing")

    assert (result.applied, result.start, result.caught_up) == (1, old_head, True)
    assert listed_titles(engine) == {"Old", "New"}
    assert log_position(engine, "book_listing") is not None


# ----------------------------------------------------------------------------- processes

WRITERS = 4
RUNNERS = 4
BOOKS_PER_WRITER = 1000  # x 5 events x 4 writers = 20,000 events
RUNNER_BATCH = 200


def test_four_writers_and_four_runners_apply_twenty_thousand_events_exactly_once(
    postgres_url: str,
) -> None:
    bootstrap.migrate(make_settings(postgres_url))
    engine = engine_for(postgres_url)
    applications_metadata.create_all(engine)
    context = multiprocessing.get_context("spawn")
    start_together = context.Barrier(WRITERS + RUNNERS)
    writers_done = context.Event()
    writer_processes = [
        context.Process(
            target=run_writer,
            args=(postgres_url, seed, BOOKS_PER_WRITER, seed % 2 == 0, start_together),
        )
        for seed in range(WRITERS)
    ]
    runner_processes = [
        context.Process(
            target=run_runner, args=(postgres_url, RUNNER_BATCH, writers_done, start_together)
        )
        for _ in range(RUNNERS)
    ]
    processes = writer_processes + runner_processes
    try:
        for process in processes:
            process.start()
        for process in writer_processes:
            process.join(timeout=180)
        assert [process.exitcode for process in writer_processes] == [0] * WRITERS
        writers_done.set()
        for process in runner_processes:
            process.join(timeout=180)
        assert [process.exitcode for process in runner_processes] == [0] * RUNNERS
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(timeout=10)

    events = WRITERS * BOOKS_PER_WRITER * (1 + CHANGES_PER_BOOK)
    with psycopg.connect(postgres_url) as connection:
        stored_count, inversions = connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE tx_id < before) FROM ("
            " SELECT tx_id, lag(tx_id) OVER (ORDER BY notification_id) AS before"
            " FROM bookstore_events) AS log"
        ).fetchone() or (0, 0)
    assert stored_count == events
    assert inversions > 0, "the writers were meant to interleave out of id order"
    counts = application_counts(engine)
    assert counts["total"] == counts["distinct"] == events
    assert counts["doubled"] == 0
    listed = table_rows(engine, book_listing)
    assert len(listed) == WRITERS * BOOKS_PER_WRITER
    assert {row["version"] for row in listed} == {1 + CHANGES_PER_BOOK}
    with fresh_postgres_database() as fresh_url:
        assert listed == rebuild_book_listing(postgres_url, fresh_url)
    engine.dispose()


# ----------------------------------------------------------------------------- property


@dataclass
class Model:
    """The writers' shared view: each book's committed version and who holds the next."""

    committed: dict[int, int] = field(default_factory=dict)
    pending: dict[int, int] = field(default_factory=dict)  # book -> writer holding a version
    open_books: dict[int, list[int]] = field(default_factory=dict)  # writer -> its books


ACTIONS = st.lists(
    st.one_of(
        st.tuples(
            st.just("save"),
            st.integers(0, 2),
            st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True),
        ),
        st.tuples(st.just("commit"), st.integers(0, 2), st.just([])),
        st.tuples(st.just("rollback"), st.integers(0, 2), st.just([])),
        st.tuples(st.just("catch_up"), st.integers(1, 4), st.just([])),
    ),
    max_size=25,
)


@pytest.fixture(scope="module")
def property_store() -> Iterator[tuple[str, Container]]:
    """One database for every example (each uses its own books and projection name)."""
    with fresh_postgres_database() as url:
        settings = make_settings(url)
        bootstrap.migrate(settings)
        container = bootstrap.build(settings)
        order_metadata.create_all(container.read_engine)
        try:
            yield url, container
        finally:
            container.close()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=ACTIONS, seed=st.integers(0, 2**32 - 1))
def test_for_any_interleaving_of_writers_each_aggregate_arrives_in_version_order(
    property_store: tuple[str, Container], actions: list[tuple[str, int, list[int]]], seed: int
) -> None:
    """Three writers save versions of four books, each save one INSERT taken after reading
    the committed versions (as the application saves), committed or rolled back in any
    order, with catch-ups of any batch size in between."""
    url, container = property_store
    app = container.write_app
    name = f"received_{uuid.uuid4().hex[:12]}"
    runner = Runner(
        app, container.read_engine, [ReceivingProjection(name)], held_back_wait_seconds=0
    )
    # Start at the head, so the catch-ups below meet this example's writes, not earlier ones.
    runner.held_back_wait_seconds = LONG_WAIT
    assert runner.catch_up_fully(name, batch_size=1000).caught_up
    runner.held_back_wait_seconds = 0
    rng = random.Random(seed)
    books = new_books(4)
    history = [stored(app, book) for book in books]  # version 1 of each
    for book, events in zip(books, history, strict=True):
        for _ in range(6):
            book.restock(rng.randint(1, 3))
        events.extend(stored(app, book))
    model = Model()
    connections = [RawWriter(url) for _ in range(3)]
    try:
        for action, who, chosen in actions:
            if action == "catch_up":
                runner.catch_up(name, batch_size=who)
                continue
            writer = connections[who]
            if action == "save" and who not in model.open_books:
                free = [b for b in chosen if b not in model.pending]
                if free:
                    writer.insert([history[b][model.committed.get(b, 0)] for b in free])
                    model.open_books[who] = free
                    model.pending.update(dict.fromkeys(free, who))
            elif action in ("commit", "rollback") and who in model.open_books:
                finished = model.open_books.pop(who)
                if action == "commit":
                    writer.commit()
                    for b in finished:
                        model.committed[b] = model.committed.get(b, 0) + 1
                else:
                    writer.rollback()
                for b in finished:
                    del model.pending[b]
        for who in list(model.open_books):
            connections[who].commit()
            for b in model.open_books.pop(who):
                model.committed[b] = model.committed.get(b, 0) + 1
    finally:
        for writer in connections:
            writer.close()
    runner.held_back_wait_seconds = LONG_WAIT
    assert runner.catch_up_fully(name, batch_size=3).caught_up

    with container.read_engine.connect() as connection:
        arrived = received_versions(connection, name)
    # Every committed version of every book, once, in version order; nothing else of them.
    expected = {
        books[b].id: list(range(1, versions + 1))
        for b, versions in model.committed.items()
        if versions
    }
    mine = {book.id for book in books}
    assert {book: versions for book, versions in arrived.items() if book in mine} == expected

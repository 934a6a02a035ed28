"""Blue/green rebuilds: the next version is built beside the serving one and switched in;
a cancelled, failed or killed rebuild leaves the serving version as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bookstore import bootstrap
from bookstore.bootstrap import Container
from projections.rebuild import RebuildOptions, Rebuilds
from projections.runner import Runner
from read_model.rebuilds import Rebuild, running_rebuild
from read_model.tables import book_listing, order_history, order_line, user_directory
from tests.conftest import TEST_SECRET, make_settings
from tests.factories import book_payload, ctx, new_book, new_order, new_user
from tests.integration.projection_support import save_books, table_rows
from tests.integration.rebuild_support import (
    POISON_TITLE,
    SLEEP_ON_TITLE_ENV,
    SLEEPING_FILE_ENV,
    PickyBookListing,
    tracked_versions,
    versioned_tables,
)
from tests.services import fresh_redis_db

REPO = Path(__file__).resolve().parents[2]
READ_TABLES = (book_listing, order_history, order_line, user_directory)
NAMES = ("book_listing", "order_history", "user_directory")


def catch_up_all(runner: Runner) -> None:
    for name in runner.names:
        assert runner.catch_up_fully(name, batch_size=500).caught_up


def some_history(container: Container, books: int = 120) -> None:
    """Books with several events each, a removed one, users and an order, all projected."""
    app = container.write_app
    save_books(app, books, events_per_book=3)
    gone = new_book(app)
    app.remove_book(ctx(), gone)
    new_user(app)
    new_order(app, (new_book(app, stock=50), 2))
    catch_up_all(container.projections.runner)


def rows_of(engine: Engine) -> dict[str, list[dict[str, object]]]:
    return {table.name: table_rows(engine, table) for table in READ_TABLES}


def small_batches(container: Container) -> Rebuilds:
    """Several load batches even on a small log, so a rebuild has steps to stop at."""
    return Rebuilds(container.projections.runner, RebuildOptions(batch_size=50))


def test_a_rebuild_builds_the_next_version_beside_the_serving_one_and_switches_to_the_same_rows(
    container: Container,
) -> None:
    some_history(container)
    before = rows_of(container.read_engine)
    rebuilds = small_batches(container)

    for name in NAMES:
        requested = rebuilds.request(name, requested_by="test")
        assert (requested.version, requested.from_version, requested.state) == (2, 1, "pending")
        finished = rebuilds.run(name)
        assert (finished.state, finished.version, finished.last_error) == ("done", 2, None)
        assert finished.events_applied > 0

    assert rows_of(container.read_engine) == before
    assert tracked_versions(container.read_engine) == [(name, 2, True) for name in NAMES]
    assert versioned_tables(container.read_engine) == []
    statuses = {status.name: status for status in container.projection_statuses()}
    assert {name: (s.version, s.state) for name, s in statuses.items()} == dict.fromkeys(
        NAMES, (2, "up_to_date")
    )
    # Version 2 follows new events like version 1 did.
    added = container.write_app.register_book(ctx(), **book_payload(title="After the switch"))
    catch_up_all(container.projections.runner)
    assert any(row["id"] == added.id for row in table_rows(container.read_engine, book_listing))


def test_a_cancelled_rebuild_leaves_the_serving_version_and_no_trace_of_the_new_one(
    container: Container,
) -> None:
    some_history(container)
    before = rows_of(container.read_engine)
    rebuilds = small_batches(container)
    rebuilds.request("book_listing")
    cancelled: list[Rebuild] = []

    def cancel_once(row: Rebuild) -> None:
        if row.position > 0 and not cancelled:
            cancelled.append(rebuilds.cancel("book_listing"))

    finished = rebuilds.run("book_listing", observer=cancel_once)

    assert cancelled
    assert (finished.state, finished.finished_at is not None) == ("cancelled", True)
    assert rows_of(container.read_engine) == before
    assert tracked_versions(container.read_engine) == [(name, 1, True) for name in NAMES]
    assert versioned_tables(container.read_engine) == []
    with container.read_engine.connect() as connection:
        assert running_rebuild(connection, "book_listing") is None
    # The state is clear: the next rebuild runs, under a version never used before.
    rebuilds.request("book_listing")
    assert rebuilds.run("book_listing").state == "done"
    assert ("book_listing", 3, True) in tracked_versions(container.read_engine)
    assert rows_of(container.read_engine) == before


def test_a_rebuild_that_meets_a_poison_event_fails_there_and_the_serving_version_goes_on(
    container: Container,
) -> None:
    app = container.write_app
    save_books(app, 60, events_per_book=2)
    poison = app.register_book(ctx(), **book_payload(title=POISON_TITLE)).position
    save_books(app, 60, events_per_book=2)
    catch_up_all(container.projections.runner)  # today's handlers list it
    before = rows_of(container.read_engine)
    # A newer release whose handler refuses that event, rebuilding from the whole log.
    newer = Runner(app, container.read_engine, [PickyBookListing()])
    rebuilds = Rebuilds(newer, RebuildOptions(batch_size=50))
    rebuilds.request("book_listing")

    finished = rebuilds.run("book_listing")

    # Registering saves the book's event, then its ISBN index's: the book's is one before.
    assert (finished.state, finished.error_position) == ("failed", poison - 1)
    assert "cannot list 'Poison'" in (finished.last_error or "")
    assert rows_of(container.read_engine) == before
    assert tracked_versions(container.read_engine) == [(name, 1, True) for name in NAMES]
    assert versioned_tables(container.read_engine) == []
    status = {s.name: s for s in container.projection_statuses()}["book_listing"]
    assert status.rebuild is not None
    assert (status.version, status.state, status.rebuild.state) == (1, "up_to_date", "failed")
    # The serving version keeps following.
    app.register_book(ctx(), **book_payload(title="Later"))
    assert container.projections.runner.catch_up_fully("book_listing").caught_up


@pytest.mark.postgres
def test_a_rebuild_whose_process_is_killed_is_interrupted_then_resumed_to_the_end(
    postgres_url: str, tmp_path: Path
) -> None:
    settings = make_settings(postgres_url)
    bootstrap.migrate(settings)
    container = bootstrap.build(settings)
    try:
        save_books(container.write_app, 6000, events_per_book=1)
        catch_up_all(container.projections.runner)
        before = rows_of(container.read_engine)
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKSTORE_")}
        env.update(
            BOOKSTORE_ENV="test",
            BOOKSTORE_SECRET_KEY=TEST_SECRET,
            BOOKSTORE_DATABASE_URL=postgres_url,
            PYTHONPATH=str(REPO),
        )
        command = [str(Path(sys.executable).parent / "bookstore"), "projections", "rebuild"]
        command += ["book_listing", "--batch-size", "100", "--workers", "0"]
        with (tmp_path / "rebuild.log").open("wb") as log:
            process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log)
        rebuilds = Rebuilds(container.projections.runner)
        try:
            deadline = time.monotonic() + 60
            while True:
                status = rebuilds.statuses().get("book_listing")
                if status is not None and status.rebuild.position > 0:
                    break
                assert process.poll() is None, (tmp_path / "rebuild.log").read_text()
                assert time.monotonic() < deadline, "the rebuild never started loading"
                time.sleep(0.05)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.wait(timeout=30)

        # Version 1 serves as before; the rebuild says it was interrupted.
        assert rows_of(container.read_engine) == before
        assert ("book_listing", 1, True) in tracked_versions(container.read_engine)
        deadline = time.monotonic() + 10
        while (status := rebuilds.statuses()["book_listing"]).state != "interrupted":
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        assert (status.rebuild.version, status.rebuild.running) == (2, True)

        # Asking again resumes it (its load starts over) and runs it to the end.
        resumed = rebuilds.request("book_listing")
        assert resumed.version == 2
        finished = rebuilds.run("book_listing")
        assert (finished.state, finished.attempts) == ("done", 2)
        assert rows_of(container.read_engine) == before
        assert tracked_versions(container.read_engine) == [
            (name, 2 if name == "book_listing" else 1, True) for name in NAMES
        ]
        assert versioned_tables(container.read_engine) == []
    finally:
        container.close()


@pytest.mark.postgres
@pytest.mark.redis
def test_a_celery_worker_killed_in_the_middle_of_a_rebuild_hands_it_to_the_next_which_resumes(
    postgres_url: str, tmp_path: Path
) -> None:
    from tests.integration.test_workers import celery_worker, log_tail, worker_env

    log = tmp_path / "worker.log"
    sleeping = tmp_path / "sleeping"
    mark = f"Sleep here {uuid.uuid4().hex[:6]}"
    with fresh_redis_db() as broker_url:
        bootstrap.migrate(make_settings(postgres_url))
        container = bootstrap.build(make_settings(postgres_url, broker_url=broker_url))
        try:
            app = container.write_app
            save_books(app, 1000, events_per_book=1)
            app.register_book(ctx(), **book_payload(title=mark))
            save_books(app, 1000, events_per_book=1)
            catch_up_all(container.projections.runner)
            before = rows_of(container.read_engine)
            env = worker_env(
                postgres_url,
                broker_url,
                **{SLEEP_ON_TITLE_ENV: mark, SLEEPING_FILE_ENV: str(sleeping)},
            )
            with celery_worker(env, log, app="tests.integration.rebuild_support", pool="prefork"):
                container.projections.start_rebuild("book_listing", requested_by="test")
                deadline = time.monotonic() + 60
                while not sleeping.exists():
                    assert time.monotonic() < deadline, log_tail(log)
                    time.sleep(0.05)
                time.sleep(0.1)  # the pid is written
                os.kill(int(sleeping.read_text()), signal.SIGKILL)

                # Killed mid-load: version 1 serves as it did.
                assert rows_of(container.read_engine) == before
                assert ("book_listing", 1, True) in tracked_versions(container.read_engine)

                # The task's message goes back to the queue; the pool's next process resumes.
                deadline = time.monotonic() + 60
                while True:
                    status = container.projections.rebuild_statuses()["book_listing"]
                    if not status.rebuild.running:
                        break
                    assert time.monotonic() < deadline, (status, log_tail(log))
                    time.sleep(0.2)
            assert (status.rebuild.state, status.rebuild.attempts) == ("done", 2), log_tail(log)
            assert rows_of(container.read_engine) == before
            assert ("book_listing", 2, True) in tracked_versions(container.read_engine)
            assert versioned_tables(container.read_engine) == []
        finally:
            container.close()

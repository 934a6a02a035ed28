"""Real Celery workers on Redis and PostgreSQL: end to end, broker down, killed mid-batch."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import redis

from adapters.celery_wakeups import WAKE_FLAG_TTL_SECONDS
from bookstore import bootstrap
from bookstore.bootstrap import Container
from read_model.books import get_book
from read_model.orders import get_order
from read_model.tables import book_listing
from read_model.tracking import projection_position
from tests.conftest import TEST_SECRET, make_settings
from tests.factories import book_payload, ctx
from tests.integration.projection_support import (
    application_counts,
    applications_metadata,
    engine_for,
    rebuild_book_listing,
    save_books,
    table_rows,
)
from tests.integration.worker_app import SLEEP_ON_TITLE_ENV, SLEEPING_FILE_ENV
from tests.services import fresh_postgres_database, fresh_redis_db

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

REPO = Path(__file__).resolve().parents[2]
CELERY = str(Path(os.environ.get("VIRTUAL_ENV", "/work/venv")) / "bin" / "celery")
DEAD_BROKER = "redis://127.0.0.1:1/0"
WAIT_SECONDS = 60.0


def celery_executable() -> str:
    import shutil
    import sys

    beside_python = Path(sys.executable).parent / "celery"
    return str(beside_python) if beside_python.exists() else (shutil.which("celery") or CELERY)


def worker_env(database_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKSTORE_")}
    env.update(
        BOOKSTORE_ENV="test",
        BOOKSTORE_SECRET_KEY=TEST_SECRET,
        BOOKSTORE_DATABASE_URL=database_url,
        BOOKSTORE_BROKER_URL=broker_url,
        BOOKSTORE_PROJECTION_BATCH_SIZE="100",
        PYTHONPATH=str(REPO),
    )
    env.update(extra)
    return env


@contextmanager
def celery_worker(
    env: dict[str, str],
    log: Path,
    *,
    app: str = "workers.celery_app",
    pool: str = "solo",
    beat: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """A real `celery worker` subprocess, always killed (with its children) at the end."""
    command = [
        celery_executable(),
        "-A",
        app,
        "worker",
        f"--pool={pool}",
        "--concurrency=2",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        f"--hostname=test-{uuid.uuid4().hex[:8]}@%h",
    ]
    if beat:
        command += ["--beat", f"--schedule={log.with_suffix('.beat')}"]
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        else:
            # The worker is gone; make sure no pool child outlives it.
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def build(database_url: str, broker_url: str) -> Container:
    return bootstrap.build(make_settings(database_url, broker_url=broker_url))


def test_a_real_worker_makes_commands_visible_and_a_burst_enqueues_one_task(
    postgres_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    with fresh_redis_db() as broker_url:
        bootstrap.migrate(make_settings(postgres_url))
        container = build(postgres_url, broker_url)
        queue = redis.Redis.from_url(broker_url)
        try:
            app = container.write_app
            book = app.register_book(ctx(), **book_payload(stock=0)).id
            started = time.monotonic()
            for _ in range(1000):
                last = app.restock_book(ctx(), book, 1)
            burst_seconds = time.monotonic() - started
            waker = container.projections.waker
            assert waker is not None
            # No worker runs yet, so the first wake-up's flag still stands: one task queued
            # for the whole burst (one more per flag lifetime, should the burst outlast it).
            allowed = 1 + int(burst_seconds // WAKE_FLAG_TTL_SECONDS)
            assert 1 <= waker.enqueued <= allowed
            assert queue.llen("celery") == waker.enqueued

            with celery_worker(
                worker_env(postgres_url, broker_url), log, pool="prefork", beat=True
            ):
                assert container.wait_for_position("book_listing", last, WAIT_SECONDS), log_tail(
                    log
                )
                with container.read_engine.connect() as connection:
                    row = get_book(connection, book)
                assert row is not None
                assert row["stock"] == 1000

                buyer = app.register_user(ctx(), email="e2e@example.com", password_hash="x").id
                app.add_to_cart(ctx(buyer), buyer, book, 3)
                placed = app.place_order(ctx(buyer), buyer)
                assert container.wait_for_position(
                    "order_history", placed.position, WAIT_SECONDS
                ), log_tail(log)
                assert container.wait_for_position("book_listing", placed.position, WAIT_SECONDS)
                with container.read_engine.connect() as connection:
                    order = get_order(connection, placed.order_id)
                    row = get_book(connection, book)
                assert order is not None
                assert order["user_id"] == buyer
                assert row is not None
                assert row["stock"] == 997
        finally:
            queue.close()
            container.close()


def test_commands_succeed_while_the_broker_is_down_and_projections_catch_up_after(
    postgres_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    bootstrap.migrate(make_settings(postgres_url))
    outage = build(postgres_url, DEAD_BROKER)
    try:
        books = [outage.write_app.register_book(ctx(), **book_payload()).id for _ in range(5)]
        head = outage.write_app.head()
        assert outage.projections.waker is not None
        assert outage.projections.waker.enqueued == 0
        assert outage.projection_position("book_listing") == 0
    finally:
        outage.close()

    with fresh_redis_db() as broker_url:
        back = build(postgres_url, broker_url)
        try:
            with celery_worker(worker_env(postgres_url, broker_url), log):
                # The worker catches up on start; a command afterwards wakes it as usual.
                assert back.wait_for_position("book_listing", head, WAIT_SECONDS), log_tail(log)
                later = back.write_app.register_book(ctx(), **book_payload())
                assert back.wait_for_position("book_listing", later.position, WAIT_SECONDS)
            with back.read_engine.connect() as connection:
                assert all(get_book(connection, book) is not None for book in books)
                assert get_book(connection, later.id) is not None
        finally:
            back.close()


def wait_until(predicate: object, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}\n{log_tail(log)}")


def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    mark = f"SLEEP-{uuid.uuid4().hex[:6]}"
    sleeping = tmp_path / "sleeping"
    log = tmp_path / "worker.log"
    bootstrap.migrate(make_settings(postgres_url))
    engine = engine_for(postgres_url)
    applications_metadata.create_all(engine)
    container = build(postgres_url, DEAD_BROKER)  # only to write events
    try:
        save_books(container.write_app, 30, events_per_book=5)  # positions 1..150
        save_books(container.write_app, 1, events_per_book=1, title=mark)  # position 151
        save_books(container.write_app, 30, events_per_book=5)
        head = container.write_app.head()
    finally:
        container.close()

    def position(name: str) -> int:
        with engine.connect() as connection:
            return projection_position(connection, name)

    with fresh_redis_db() as broker_url:
        env = worker_env(
            postgres_url,
            broker_url,
            **{SLEEP_ON_TITLE_ENV: mark, SLEEPING_FILE_ENV: str(sleeping)},
        )
        app = "tests.integration.worker_app"
        with celery_worker(env, log, app=app) as doomed:
            wait_until(sleeping.exists, WAIT_SECONDS, "the marked event", log)
            # Mid-batch: events 101..150 are applied in the open transaction, not committed.
            assert position("test_applications") == 100
            assert application_counts(engine)["total"] == 100
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait(timeout=10)

        env.pop(SLEEP_ON_TITLE_ENV)
        with celery_worker(env, log, app=app):
            wait_until(
                lambda: position("test_applications") == head and position("book_listing") == head,
                WAIT_SECONDS,
                "the restarted worker to catch up",
                log,
            )

    counts = application_counts(engine)
    assert counts["total"] == counts["distinct"] == head
    assert counts["doubled"] == 0
    rebuilt_elsewhere: list[dict[str, object]]
    with fresh_postgres_database() as fresh_url:
        rebuilt_elsewhere = rebuild_book_listing(postgres_url, fresh_url)
    assert table_rows(engine, book_listing) == rebuilt_elsewhere
    engine.dispose()

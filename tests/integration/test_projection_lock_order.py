"""The runner never holds the read database's lock while it asks the event store for rows.

In embedded mode the event store and the read tables are one SQLite file. The store's
writers hold its connection pool's writer slot while they wait for the file's write lock;
a runner that held that write lock and then asked the pool for a connection deadlocked
with them until timeouts failed commands (500s) and batches ("database is locked") alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, select

from bookstore import bootstrap
from bookstore.bootstrap import Container
from read_model.tables import user_directory
from tests.conftest import make_settings
from tests.factories import book_payload, ctx


@pytest.fixture
def sqlite_container(sqlite_url: str) -> Iterator[Container]:
    """The embedded default: event store and read tables in one SQLite file."""
    settings = make_settings(sqlite_url)
    bootstrap.migrate(settings)
    wired = bootstrap.build(settings)
    yield wired
    wired.close()


@pytest.fixture
def open_read_transactions(container: Container) -> Iterator[set[int]]:
    """The threads that have a read-database transaction open right now."""
    open_in: set[int] = set()

    def began(*_: Any) -> None:
        open_in.add(threading.get_ident())

    def ended(*_: Any) -> None:
        open_in.discard(threading.get_ident())

    engine = container.read_engine
    event.listen(engine, "begin", began)
    event.listen(engine, "commit", ended)
    event.listen(engine, "rollback", ended)
    yield open_in
    event.remove(engine, "begin", began)
    event.remove(engine, "commit", ended)
    event.remove(engine, "rollback", ended)


def test_the_runner_reads_the_store_only_outside_read_transactions(
    container: Container, open_read_transactions: set[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = container.write_app.recorder
    violations: list[str] = []

    def guarded(name: str) -> Callable[..., Any]:
        original = getattr(recorder, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() in open_read_transactions:
                violations.append(name)
            return original(*args, **kwargs)

        return call

    app = container.write_app
    for _ in range(3):
        book = app.register_book(ctx(), **book_payload(stock=2))
        app.restock_book(ctx(), book.id, 1)
    monkeypatch.setattr(recorder, "max_notification_id", guarded("max_notification_id"))
    monkeypatch.setattr(recorder, "select_notifications", guarded("select_notifications"))

    runner = container.projections.runner
    for name in runner.names:
        assert runner.catch_up_fully(name, batch_size=2).caught_up

    assert violations == []


def test_concurrent_commands_and_the_embedded_runner_share_one_sqlite_file(
    sqlite_container: Container,
) -> None:
    container = sqlite_container
    container.start()
    app = container.write_app
    errors: list[BaseException] = []
    slowest = [0.0]
    guard = threading.Lock()

    def register(thread: int) -> None:
        for number in range(15):
            started = time.monotonic()
            try:
                app.register_user(
                    ctx(), email=f"user-{thread}-{number}@example.com", password_hash="x"
                )
            except Exception as error:  # collected, asserted below
                with guard:
                    errors.append(error)
            with guard:
                slowest[0] = max(slowest[0], time.monotonic() - started)

    threads = [threading.Thread(target=register, args=(number,)) for number in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert slowest[0] < 3.0
    head = app.head()
    for name in container.projections.runner.names:
        assert container.wait_for_position(name, head, timeout=10)
    with container.read_engine.connect() as connection:
        users = connection.execute(select(func.count()).select_from(user_directory)).scalar_one()
    assert users == 6 * 15
    for status in container.projection_statuses():
        assert (status.state, status.lag_events, status.last_error) == ("up_to_date", 0, None)

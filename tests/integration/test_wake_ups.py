"""Commits wake only the projections that read their events, and a wake-up during a
catch-up makes the running task go again rather than queue another (Redis, no worker)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from adapters.celery_wakeups import start_catching_up, woken_meanwhile
from bookstore import bootstrap
from bookstore.bootstrap import Container
from tests.conftest import make_settings
from tests.factories import ctx, new_book, new_customer
from tests.services import fresh_redis_db

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def with_broker(postgres_url: str) -> Iterator[tuple[Container, redis.Redis]]:
    with fresh_redis_db() as broker_url:
        bootstrap.migrate(make_settings(postgres_url))
        container = bootstrap.build(make_settings(postgres_url, broker_url=broker_url))
        queue = redis.Redis.from_url(broker_url)
        try:
            yield container, queue
        finally:
            queue.close()
            container.close()


def queued(queue: redis.Redis) -> list[str]:
    """The projections named by the catch-up tasks waiting in the queue, oldest first."""
    names = []
    for raw in reversed(queue.lrange("celery", 0, -1)):
        headers = json.loads(raw)["headers"]
        assert headers["task"] == "bookstore.projections.catch_up"
        names.append(headers["argsrepr"])
    queue.delete("celery")
    return names


def test_a_commit_wakes_only_the_projections_that_read_its_events(
    with_broker: tuple[Container, redis.Redis],
) -> None:
    container, queue = with_broker
    app = container.write_app
    book = new_book(app, stock=10)
    customer = new_customer(app)
    queue.flushdb()

    app.add_to_cart(ctx(customer), customer, book, 1)
    assert queued(queue) == []  # a cart change wakes none

    app.restock_book(ctx(), book, 1)
    assert queued(queue) == ["['book_listing']"]

    queue.flushdb()
    app.place_order(ctx(customer), customer)
    assert sorted(queued(queue)) == ["['book_listing']", "['order_history']"]


def test_a_wake_up_during_a_catch_up_makes_the_running_task_go_again_instead_of_queueing(
    with_broker: tuple[Container, redis.Redis],
) -> None:
    container, queue = with_broker
    app = container.write_app
    book = new_book(app, stock=10)
    queue.flushdb()

    start_catching_up(queue, "book_listing")  # what a task does as it starts
    app.restock_book(ctx(), book, 1)
    app.restock_book(ctx(), book, 1)

    assert queued(queue) == []
    assert woken_meanwhile(queue, "book_listing")  # it catches up again at once
    assert not woken_meanwhile(queue, "book_listing")  # then stops; the flag is gone
    app.restock_book(ctx(), book, 1)
    assert queued(queue) == ["['book_listing']"]

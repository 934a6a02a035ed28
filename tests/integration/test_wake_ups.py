"""Commits wake only the projections that read their events, and a wake-up during a
catch-up makes the running task go again rather than wait behind another (Redis, no
worker: the task's side is driven by hand)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from adapters.celery_wakeups import start_catching_up, take_over
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
    """The projections named by each catch-up task waiting in the queue, oldest first."""
    tasks = []
    for raw in reversed(queue.lrange("celery", 0, -1)):
        headers = json.loads(raw)["headers"]
        assert headers["task"] == "bookstore.projections.catch_up"
        tasks.append(headers["argsrepr"])
    queue.delete("celery")
    return tasks


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
    assert queued(queue) == ["[['book_listing']]"]

    queue.flushdb()
    app.place_order(ctx(customer), customer)  # reserves stock: the book changes too
    assert queued(queue) == ["[['book_listing', 'order_history']]"]
    app.restock_book(ctx(), book, 1)
    assert queued(queue) == []  # a task for book_listing is queued already


def test_a_wake_up_during_a_catch_up_makes_the_running_task_go_again_and_take_over_others(
    with_broker: tuple[Container, redis.Redis],
) -> None:
    container, queue = with_broker
    app = container.write_app
    book = new_book(app, stock=10)
    queue.flushdb()

    every = container.projections.runner.names
    start_catching_up(queue, ["book_listing"])  # what a task does as it starts
    app.restock_book(ctx(), book, 1)
    app.restock_book(ctx(), book, 1)
    new_customer(app)  # user_directory: queued for a task behind the running one

    assert queued(queue) == ["[['user_directory']]"]
    # After its round the running task goes on with both at once; the queued task will
    # find nothing left to do.
    assert take_over(queue, every, ["book_listing"]) == ["book_listing", "user_directory"]
    assert take_over(queue, every, ["book_listing", "user_directory"]) == []  # flags gone
    app.restock_book(ctx(), book, 1)
    assert queued(queue) == ["[['book_listing']]"]

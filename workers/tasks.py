"""The projection catch-up task: thin; the work is `projections.runner.Runner`."""

from __future__ import annotations

import logging
import time
from functools import lru_cache
from typing import Any

import redis
from celery import shared_task

from adapters.celery_wakeups import (
    CATCH_UP_TASK,
    clear_wake_flag,
    redis_client,
    start_catching_up,
    wake_flag_key,
    woken_meanwhile,
)
from projections.runner import BatchResult, Runner
from workers import runtime

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _flag_client(broker_url: str) -> redis.Redis:
    """One client per worker process, made on first use (after the prefork fork)."""
    return redis_client(broker_url)


# Catch-ups hand over to a fresh task after this long, so one backlog never holds a worker
# slot near the hard time limit.
WORK_BUDGET_SECONDS = 20.0
SOFT_TIME_LIMIT_SECONDS = 60
TIME_LIMIT_SECONDS = 90


@shared_task(  # type: ignore[untyped-decorator]
    name=CATCH_UP_TASK,
    acks_late=True,
    ignore_result=True,
    soft_time_limit=SOFT_TIME_LIMIT_SECONDS,
    time_limit=TIME_LIMIT_SECONDS,
)
def catch_up(name: str | None = None) -> dict[str, Any]:
    """Catch one projection (a commit's wake-up) or all (the beat backstop) up.

    Safe to run anywhere, any number of times at once: each batch locks the projection's
    tracking row, and a batch interrupted by a crash is rolled back and repeated. A
    projection's task marks its wake-up flag `running` first, and catches up again at once
    when a commit woke it meanwhile (`adapters.celery_wakeups`).
    """
    container = runtime.container()
    broker_url = container.settings.broker_url
    client = _flag_client(broker_url) if broker_url else None
    runner = container.projections.runner
    batch_size = container.settings.projection_batch_size
    if name is None:
        if client is not None:
            clear_wake_flag(client)  # what tasks sent by older servers set
        results = runner.catch_up_many(
            runner.names, batch_size=batch_size, max_seconds=WORK_BUDGET_SECONDS
        )
    else:
        results = {name: _catch_up_one(runner, name, batch_size, client)}
    summary: dict[str, Any] = {}
    lagging: list[str] = []
    for projection, result in results.items():
        summary[projection] = {"position": result.position, "applied": result.applied}
        if result.failed:
            summary[projection]["error"] = result.error
        elif not result.caught_up:
            lagging.append(projection)
    if lagging and container.projections.waker is not None:
        # Out of budget with work left: hand over to a fresh task rather than hog this one.
        container.projections.waker.wake(names=lagging)
    return summary


def _catch_up_one(
    runner: Runner, name: str, batch_size: int, client: redis.Redis | None
) -> BatchResult:
    """Catch `name` up, again while commits woke it meanwhile, within the work budget."""
    if client is not None:
        start_catching_up(client, name)
    deadline = time.monotonic() + WORK_BUDGET_SECONDS
    while True:
        result = runner.catch_up_fully(
            name, batch_size=batch_size, max_seconds=max(0.0, deadline - time.monotonic())
        )
        if client is None:
            return result
        if result.failed or not result.caught_up or time.monotonic() >= deadline:
            # Leaving: the next commit enqueues a new task (a hand-over wakes one now).
            client.delete(wake_flag_key(name))
            return result
        if not woken_meanwhile(client, name):
            return result

"""The projection catch-up task: thin; the work is `projections.runner.Runner`."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import redis
from celery import shared_task

from adapters.celery_wakeups import CATCH_UP_TASK, clear_wake_flag, redis_client
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
    """Catch one projection (or all) up with the store.

    Safe to run anywhere, any number of times at once: each batch takes the projection's
    lock, and a batch interrupted by a crash is rolled back and repeated.
    """
    container = runtime.container()
    broker_url = container.settings.broker_url
    if broker_url:
        # Clear the coalescing flag before reading the head: commits from now on enqueue
        # a new task, commits before it are covered by this one.
        clear_wake_flag(_flag_client(broker_url))
    runner = container.projections.runner
    results = runner.catch_up_many(
        runner.names if name is None else (name,),
        batch_size=container.settings.projection_batch_size,
        max_seconds=WORK_BUDGET_SECONDS,
    )
    summary: dict[str, Any] = {}
    lagging = False
    for projection, result in results.items():
        summary[projection] = {"position": result.position, "applied": result.applied}
        if result.failed:
            summary[projection]["error"] = result.error
        elif not result.caught_up:
            lagging = True
    if lagging and container.projections.waker is not None:
        # Out of budget with work left: hand over to a fresh task rather than hog this one.
        container.projections.waker.wake()
    return summary

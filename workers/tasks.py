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
    release,
    start_catching_up,
    take_over,
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
def catch_up(names: list[str] | str | None = None) -> dict[str, Any]:
    """Catch up the projections a commit woke (`names`), or all of them (the backstop).

    Safe to run anywhere, any number of times at once: each batch locks the projection's
    tracking row, and a batch interrupted by a crash is rolled back and repeated. A woken
    task goes on in rounds while commits wake projections meanwhile, taking over those
    queued for later tasks (`adapters.celery_wakeups`).
    """
    container = runtime.container()
    broker_url = container.settings.broker_url
    client = _flag_client(broker_url) if broker_url else None
    runner = container.projections.runner
    batch_size = container.settings.projection_batch_size
    if names is None:
        if client is not None:
            clear_wake_flag(client)  # what tasks sent by older servers set
        results = runner.catch_up_many(
            runner.names, batch_size=batch_size, max_seconds=WORK_BUDGET_SECONDS
        )
        lagging = [name for name, result in results.items() if _lagging(result)]
    else:
        wanted = [names] if isinstance(names, str) else list(names)
        known = [name for name in wanted if name in runner.names]
        results, lagging = _rounds(runner, known, batch_size, client)
    summary: dict[str, Any] = {}
    for projection, result in results.items():
        summary[projection] = {"position": result.position, "applied": result.applied}
        if result.failed:
            summary[projection]["error"] = result.error
    if lagging and container.projections.waker is not None:
        # Out of budget with work left: hand over to a fresh task rather than hog this one.
        container.projections.waker.wake(names=lagging)
    return summary


def _lagging(result: BatchResult) -> bool:
    return not result.failed and not result.caught_up


def _rounds(
    runner: Runner, names: list[str], batch_size: int, client: redis.Redis | None
) -> tuple[dict[str, BatchResult], list[str]]:
    """Rounds of catch-ups: `names` first, then those woken meanwhile, within the budget.

    The last result of each projection, and the projections left with work to do.
    """
    results: dict[str, BatchResult] = {}
    if client is not None:
        start_catching_up(client, names)
    deadline = time.monotonic() + WORK_BUDGET_SECONDS
    while names:
        remaining = max(0.0, deadline - time.monotonic())
        if len(names) == 1:
            done = {
                names[0]: runner.catch_up_fully(
                    names[0], batch_size=batch_size, max_seconds=remaining
                )
            }
        else:
            done = runner.catch_up_many(names, batch_size=batch_size, max_seconds=remaining)
        results.update(done)
        if client is None:
            return results, []
        failed = {name for name, result in done.items() if result.failed}
        lagging = [name for name, result in done.items() if _lagging(result)]
        woken = take_over(client, runner.names, names)
        if lagging or time.monotonic() >= deadline:
            # Leaving with work to do: the caller hands it to a fresh task.
            release(client, {*names, *woken})
            return results, sorted({*lagging, *woken} - failed)
        # A failing projection is retried by the next commit's task, not in a loop here.
        release(client, failed & set(woken))
        names = [name for name in woken if name not in failed]
    return results, []

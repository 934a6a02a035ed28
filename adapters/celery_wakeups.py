"""Coalesced wake-ups: a burst of commits enqueues one catch-up task, not one per commit.

After each commit the server sets a flag in Redis with SET NX; only the commit that sets
it enqueues a task. The task clears the flag *before* it reads the store's head, so a
commit after that enqueues the next task, and a commit before it is covered by the task
already queued: no wake-up is lost, and at most one task waits in the queue.

The broker is not the system of record: if Redis is down the commit has happened anyway,
the wake-up is dropped (and not retried for a few seconds, so commands stay fast), and the
beat schedule and the worker's start-up catch-up bring the projections up to date once it
is back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import redis
from celery import Celery

log = logging.getLogger(__name__)

CATCH_UP_TASK = "bookstore.projections.catch_up"
REBUILD_TASK = "bookstore.projections.rebuild"
RESUME_REBUILDS_TASK = "bookstore.projections.resume_rebuilds"
WAKE_FLAG_KEY = "bookstore:projections:wake-pending"
WAKE_FLAG_TTL_SECONDS = 10
SOCKET_TIMEOUT_SECONDS = 0.5
BROKER_DOWN_RETRY_SECONDS = 2.0


def redis_client(broker_url: str) -> redis.Redis:
    """A client that gives up fast: a wake-up must never hold a command up for long."""
    return redis.Redis.from_url(
        broker_url,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
    )


def clear_wake_flag(client: redis.Redis) -> None:
    """Called by the task as it starts: commits from now on enqueue a new task."""
    client.delete(WAKE_FLAG_KEY)


class BrokerUnavailableError(RuntimeError):
    """The broker did not take a task."""


class CeleryWaker:
    """A commit listener that enqueues coalesced catch-up tasks on the broker."""

    def __init__(self, broker_url: str) -> None:
        self._redis = redis_client(broker_url)
        self._celery = Celery("bookstore-waker", broker=broker_url, set_as_current=False)
        self._celery.conf.broker_connection_timeout = SOCKET_TIMEOUT_SECONDS
        self._celery.conf.broker_connection_retry = False
        self._down_until = 0.0
        self._lock = threading.Lock()
        self.enqueued = 0

    def wake(self, position: int | None = None) -> None:
        """Enqueue a catch-up unless one is already waiting; never raises."""
        now = time.monotonic()
        if now < self._down_until:
            return
        try:
            if not self._redis.set(WAKE_FLAG_KEY, position or 0, nx=True, ex=WAKE_FLAG_TTL_SECONDS):
                return
        except redis.RedisError as error:
            self._broker_down(now, error)
            return
        try:
            self._celery.send_task(CATCH_UP_TASK, retry=False, ignore_result=True)
            with self._lock:
                self.enqueued += 1
        except Exception as error:
            self._broker_down(now, error)
            with contextlib.suppress(redis.RedisError):
                self._redis.delete(WAKE_FLAG_KEY)

    def rebuild(self, name: str) -> None:
        """Have a worker run the rebuild of `name` (recorded already); raises
        `BrokerUnavailableError` if the broker cannot take the task."""
        try:
            self._celery.send_task(REBUILD_TASK, args=[name], retry=False, ignore_result=True)
        except Exception as error:
            raise BrokerUnavailableError(str(error)) from error

    def _broker_down(self, now: float, error: Exception) -> None:
        log.warning(
            "broker unreachable (%s): projections catch up when it is back (beat backstop)",
            error,
        )
        self._down_until = now + BROKER_DOWN_RETRY_SECONDS

    def close(self) -> None:
        self._redis.close()
        self._celery.close()

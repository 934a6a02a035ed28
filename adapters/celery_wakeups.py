"""Coalesced wake-ups: a burst of commits enqueues one catch-up task, not one per commit.

Each projection has a flag in Redis, and a commit wakes only the projections that read one
of the topics it saved (a cart change wakes none). Waking a projection runs one atomic
script on its flag (`WAKE_SCRIPT`):

- no flag: set it to `queued` and enqueue a catch-up task for that projection;
- `queued`: a task waits already, and will read this commit's events: nothing to do;
- `running`: a task is catching up right now; set the flag to `again`, and that task runs
  another catch-up as soon as its current one ends (`FINISH_SCRIPT`), instead of leaving
  this commit to a task queued behind it.

The task sets the flag to `running` as it starts, before it reads the store, and deletes it
only once a catch-up ends with no `again` set: no wake-up is lost, at most one task per
projection waits in the queue, and a commit during a catch-up waits for the rest of that
catch-up, never for a whole extra task. The flags expire (`WAKE_FLAG_TTL_SECONDS`), so a
worker that dies mid-task leaves nothing stuck.

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
from collections.abc import Iterable

import redis
from celery import Celery

log = logging.getLogger(__name__)

CATCH_UP_TASK = "bookstore.projections.catch_up"
REBUILD_TASK = "bookstore.projections.rebuild"
RESUME_REBUILDS_TASK = "bookstore.projections.resume_rebuilds"
WAKE_FLAG_KEY = "bookstore:projections:wake-pending"
WAKE_FLAG_TTL_SECONDS = 10

# KEYS[1] the projection's flag, ARGV[1] its lifetime: 1 when the caller must enqueue.
WAKE_SCRIPT = """
local state = redis.call('GET', KEYS[1])
if not state then
  redis.call('SET', KEYS[1], 'queued', 'EX', ARGV[1])
  return 1
end
if state == 'running' then
  redis.call('SET', KEYS[1], 'again', 'EX', ARGV[1])
end
return 0
"""
# Run by the task after each catch-up: 1 when a wake-up came meanwhile (catch up again).
FINISH_SCRIPT = """
local state = redis.call('GET', KEYS[1])
if state == 'again' then
  redis.call('SET', KEYS[1], 'running', 'EX', ARGV[1])
  return 1
end
if state == 'running' then
  redis.call('DEL', KEYS[1])
end
return 0
"""


def wake_flag_key(name: str) -> str:
    """The flag of one projection's wake-ups."""
    return f"{WAKE_FLAG_KEY}:{name}"


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
    """The flag of wake-ups for every projection at once (older workers' tasks)."""
    client.delete(WAKE_FLAG_KEY)


def start_catching_up(client: redis.Redis, name: str) -> None:
    """Called by a projection's task as it starts, before it reads the store."""
    client.set(wake_flag_key(name), "running", ex=WAKE_FLAG_TTL_SECONDS)


def woken_meanwhile(client: redis.Redis, name: str) -> bool:
    """Called by the task after each catch-up: True if it must catch up again."""
    return bool(client.eval(FINISH_SCRIPT, 1, wake_flag_key(name), WAKE_FLAG_TTL_SECONDS))


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
        self._wake_script = self._redis.register_script(WAKE_SCRIPT)
        self.enqueued = 0

    def wake(self, position: int | None = None, names: Iterable[str] = ()) -> None:
        """Have the named projections catch up (a task each, unless one is queued, or
        one running is told to go again); never raises."""
        del position
        now = time.monotonic()
        if now < self._down_until:
            return
        for name in names:
            key = wake_flag_key(name)
            try:
                if not self._wake_script(keys=[key], args=[WAKE_FLAG_TTL_SECONDS]):
                    continue
            except redis.RedisError as error:
                self._broker_down(now, error)
                return
            try:
                self._celery.send_task(CATCH_UP_TASK, args=[name], retry=False, ignore_result=True)
                with self._lock:
                    self.enqueued += 1
            except Exception as error:
                self._broker_down(now, error)
                with contextlib.suppress(redis.RedisError):
                    self._redis.delete(key)
                return

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

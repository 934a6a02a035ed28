"""Coalesced wake-ups: a burst of commits enqueues one catch-up task, not one per commit.

Each projection has a flag in Redis, and a commit wakes only the projections that read one
of the topics it saved (a cart change wakes none). Waking runs one atomic script per
projection on its flag (`WAKE_SCRIPT`):

- no flag: set it to `queued`; the commit enqueues one task naming every projection so;
- `queued`: a task waits already, and will read this commit's events: nothing to do;
- `running`: a task is catching it up right now; set the flag to `again`.

The task sets its projections' flags to `running` before it reads the store. After each
round of catch-ups it runs `TAKE_OVER_SCRIPT` over every projection's flag: those set to
`again` or `queued` meanwhile are caught up in its next round, right away, rather than by a
task waiting behind it (with one worker slot, a queue of tasks would otherwise serialise
the projections); the flags of those it caught up and nobody woke again are deleted. So no
wake-up is lost, a commit during a catch-up waits for the rest of that round, never for a
whole extra task, and a task queued meanwhile finds nothing left to do. The flags expire
(`WAKE_FLAG_TTL_SECONDS`), so a worker that dies mid-task leaves nothing stuck.

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
from collections.abc import Iterable, Sequence

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
# Run by a task after each round: KEYS every projection's flag, ARGV[1] the lifetime, then
# one 0/1 per key: whether this round caught that projection up. Returns one 0/1 per key:
# whether to catch it up in the next round (woken meanwhile, or queued for a later task).
TAKE_OVER_SCRIPT = """
local next = {}
for i, key in ipairs(KEYS) do
  local state = redis.call('GET', key)
  if state == 'again' or state == 'queued' then
    redis.call('SET', key, 'running', 'EX', ARGV[1])
    next[i] = 1
  else
    if state == 'running' and ARGV[i + 1] == '1' then
      redis.call('DEL', key)
    end
    next[i] = 0
  end
end
return next
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


def start_catching_up(client: redis.Redis, names: Iterable[str]) -> None:
    """Called by a task as it starts, before it reads the store: these are running."""
    with client.pipeline(transaction=False) as pipeline:
        for name in names:
            pipeline.set(wake_flag_key(name), "running", ex=WAKE_FLAG_TTL_SECONDS)
        pipeline.execute()


def take_over(client: redis.Redis, every: Sequence[str], caught_up: Iterable[str]) -> list[str]:
    """Called by a task after each round: the projections (of `every`) to catch up next,
    woken during the round or queued for a later task; the others' flags are released."""
    done = set(caught_up)
    flags = [wake_flag_key(name) for name in every]
    marks = ["1" if name in done else "0" for name in every]
    found = client.eval(TAKE_OVER_SCRIPT, len(flags), *flags, WAKE_FLAG_TTL_SECONDS, *marks)
    return [name for name, again in zip(every, found, strict=True) if again]


def release(client: redis.Redis, names: Iterable[str]) -> None:
    """Drop the flags of projections a task leaves (out of time, or stopped by a failure)."""
    keys = [wake_flag_key(name) for name in names]
    if keys:
        client.delete(*keys)


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
        """Have the named projections catch up: one task for those no task is queued or
        running for (a running one is told to go again); never raises."""
        del position
        now = time.monotonic()
        if now < self._down_until:
            return
        needed: list[str] = []
        try:
            for name in names:
                key = wake_flag_key(name)
                if self._wake_script(keys=[key], args=[WAKE_FLAG_TTL_SECONDS]):
                    needed.append(name)
        except redis.RedisError as error:
            self._broker_down(now, error)
            return
        if not needed:
            return
        try:
            self._celery.send_task(CATCH_UP_TASK, args=[needed], retry=False, ignore_result=True)
            with self._lock:
                self.enqueued += 1
        except Exception as error:
            self._broker_down(now, error)
            with contextlib.suppress(redis.RedisError):
                release(self._redis, needed)

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

"""Counting attempts against limits: in Redis when one is configured, else in a write table.

Unlike process memory, both are shared by every server process, so N server processes do
not give an attacker N times the tries. `bookstore.bootstrap` picks the backend; which keys
and limits apply is the API's policy (`api.security.throttling`).

An attempt is *reserved* before the work it guards (a password check, a 64 MiB hash) and
counted at once, in one atomic step over all its keys: of 16 simultaneous guesses against
a limit of 10, exactly 10 are let through, whatever the timing. A reservation that turns
out to be no failure (the right password) is handed back with `release`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import redis
from sqlalchemy import Connection, Engine, case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from adapters.clock import as_utc, utcnow
from adapters.write_tables import (
    login_failures,
)

log = logging.getLogger(__name__)

KEY_COLUMN_LENGTH = 400


@dataclass(frozen=True)
class Limit:
    """At most `max_count` attempts per `window_seconds` (a fixed window from the first).

    With `only_after` set, the limit refuses only attempts whose `only_after` key already
    counts one in its window: the per-account limit stops addresses that have failed
    against the account, and still lets a clean address (the owner's) try once.
    """

    key: str
    max_count: int
    window_seconds: int
    only_after: str | None = None


@dataclass(frozen=True)
class Verdict:
    """Whether an attempt was let through (and counted), else when to come back."""

    allowed: bool
    retry_after: int = 0


ALLOWED = Verdict(allowed=True)


def _check(limits: Sequence[Limit]) -> None:
    keys = [limit.key for limit in limits]
    if len(set(keys)) != len(keys):
        msg = f"one limit per key: {keys}"
        raise ValueError(msg)
    for limit in limits:
        if limit.only_after is not None and limit.only_after not in keys:
            msg = f"{limit.key} depends on {limit.only_after}, which is not limited here"
            raise ValueError(msg)


def _seconds(remaining: float) -> int:
    """Retry-After in whole seconds, never 0: a client told 0 would come straight back."""
    return max(1, math.ceil(remaining))


class LoginThrottle(Protocol):
    """Attempt counters keyed by strings, each in a fixed window from its first attempt."""

    def reserve(self, limits: Sequence[Limit]) -> Verdict:
        """Count one attempt under every limit, atomically, unless one of them refuses it."""

    def release(self, keys: Sequence[str]) -> None:
        """Hand back one reserved attempt on each key (it was no failure)."""

    def forget(self, keys: Sequence[str]) -> None:
        """Drop these counters altogether (e.g. a pair's failures, after a success)."""

    def count(self, key: str) -> int:
        """Attempts counted on `key` in its current window (for tests and operators)."""


class SqlLoginThrottle:
    """The counters in the write database (table `login_failures`), shared by every process.

    A reservation upserts each key's row (counting the attempt, or restarting an expired
    window) in one transaction, rows in key order: PostgreSQL's row locks and SQLite's
    single writer make concurrent reservations of the same key wait for each other, and the
    sorted order rules out deadlocks. A refused reservation rolls back, so it counts nothing.
    """

    cleanup_every_seconds = 60.0

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        self._longest_window = 0
        self._next_cleanup = 0.0
        self._cleanup_lock = threading.Lock()

    def reserve(self, limits: Sequence[Limit]) -> Verdict:
        _check(limits)
        now = utcnow()
        counted: dict[str, tuple[int, datetime]] = {}
        connection: Connection
        with self.engine.connect() as connection, connection.begin() as transaction:
            for limit in sorted(limits, key=lambda each: each.key):
                counted[limit.key] = self._count_one(connection, limit, now)
            verdict = self._verdict(limits, counted, now)
            if not verdict.allowed:
                transaction.rollback()
        self._longest_window = max(
            self._longest_window, *(limit.window_seconds for limit in limits)
        )
        self._maybe_clean_up()
        return verdict

    def _count_one(
        self, connection: Connection, limit: Limit, now: datetime
    ) -> tuple[int, datetime]:
        """Count one more on `limit.key` (or start its window afresh); the new count and start."""
        table = login_failures
        expired = table.c.window_started_at <= now - timedelta(seconds=limit.window_seconds)
        insert = self._insert(table).values(
            key=_stored(limit.key), failures=1, window_started_at=now
        )
        statement = insert.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "failures": case((expired, 1), else_=table.c.failures + 1),
                "window_started_at": case((expired, now), else_=table.c.window_started_at),
            },
        ).returning(table.c.failures, table.c.window_started_at)
        row = connection.execute(statement).one()
        return int(row.failures), as_utc(row.window_started_at)

    @staticmethod
    def _verdict(
        limits: Sequence[Limit], counted: dict[str, tuple[int, datetime]], now: datetime
    ) -> Verdict:
        """Judge on the counts *before* this attempt (the new count minus one)."""
        by_key = {limit.key: limit for limit in limits}

        def frees_in(key: str) -> float:
            started = counted[key][1]
            ends = started + timedelta(seconds=by_key[key].window_seconds)
            return (ends - now).total_seconds()

        waits: list[float] = []
        for limit in limits:
            before = counted[limit.key][0] - 1
            if before < limit.max_count:
                continue
            if limit.only_after is None:
                waits.append(frees_in(limit.key))
            elif counted[limit.only_after][0] - 1 >= 1:
                waits.append(min(frees_in(limit.key), frees_in(limit.only_after)))
        if not waits:
            return ALLOWED
        return Verdict(allowed=False, retry_after=_seconds(max(waits)))

    def release(self, keys: Sequence[str]) -> None:
        with self.engine.begin() as connection:
            for key in sorted(keys):
                connection.execute(
                    update(login_failures)
                    .where(login_failures.c.key == _stored(key), login_failures.c.failures > 0)
                    .values(failures=login_failures.c.failures - 1)
                )

    def forget(self, keys: Sequence[str]) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                delete(login_failures).where(login_failures.c.key.in_([_stored(k) for k in keys]))
            )

    def count(self, key: str) -> int:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(login_failures.c.failures).where(login_failures.c.key == _stored(key))
            ).one_or_none()
        return 0 if row is None else int(row.failures)

    def _maybe_clean_up(self) -> None:
        """Now and then, delete rows whose window ended long ago (they count nothing)."""
        moment = time.monotonic()
        if moment < self._next_cleanup or not self._cleanup_lock.acquire(blocking=False):
            return
        try:
            self._next_cleanup = moment + self.cleanup_every_seconds
            oldest = utcnow() - timedelta(seconds=self._longest_window)
            with self.engine.begin() as connection:
                connection.execute(
                    delete(login_failures).where(login_failures.c.window_started_at < oldest)
                )
        except Exception:
            log.exception("login throttle: cleaning up expired counters failed")
        finally:
            self._cleanup_lock.release()


def _stored(key: str) -> str:
    """The key as the table holds it: a very long one is shortened by a digest."""
    if len(key) <= KEY_COLUMN_LENGTH:
        return key
    return key[:300] + "#" + hashlib.sha256(key.encode()).hexdigest()


# Every key is read, judged and (if all allow) counted inside one script: Redis runs a
# script atomically, so no other reservation sees a half-counted attempt.
# KEYS: the counters; ARGV: for each key, its max, its window (s) and the 1-based index of
# its `only_after` key (0 for none). Returns 0 when counted, else the wait in milliseconds.
_RESERVE = """
local counts = {}
for i = 1, #KEYS do counts[i] = tonumber(redis.call('GET', KEYS[i]) or '0') end
local function frees_in(i)
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl < 0 then return 1000 end
  return ttl
end
local wait = -1
for i = 1, #KEYS do
  local max = tonumber(ARGV[3 * i - 2])
  local after = tonumber(ARGV[3 * i])
  if counts[i] >= max then
    local w = -1
    if after == 0 then
      w = frees_in(i)
    elseif counts[after] >= 1 then
      w = math.min(frees_in(i), frees_in(after))
    end
    if w > wait then wait = w end
  end
end
if wait >= 0 then return math.max(wait, 1) end
for i = 1, #KEYS do
  local n = redis.call('INCR', KEYS[i])
  if n == 1 or redis.call('PTTL', KEYS[i]) < 0 then
    redis.call('EXPIRE', KEYS[i], ARGV[3 * i - 1])
  end
end
return 0
"""

# Decrement what exists and is above zero; never create a key without an expiry.
_RELEASE = """
for i = 1, #KEYS do
  local n = tonumber(redis.call('GET', KEYS[i]) or '0')
  if n > 0 then redis.call('DECR', KEYS[i]) end
end
return 0
"""


class RedisLoginThrottle:
    """The counters in Redis: one key each, expiring with its window; scripts keep it atomic.

    A Redis outage fails open (every attempt allowed), logged loudly: logins keep working,
    and the password hash still has to be beaten.
    """

    prefix = "bookstore:throttle:"

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)

    def reserve(self, limits: Sequence[Limit]) -> Verdict:
        _check(limits)
        keys = [limit.key for limit in limits]
        args: list[int] = []
        for limit in limits:
            after = 0 if limit.only_after is None else keys.index(limit.only_after) + 1
            args += [limit.max_count, limit.window_seconds, after]
        try:
            wait_ms = int(self._reserve(keys=[self.prefix + key for key in keys], args=args))
        except redis.RedisError:
            log.exception("throttle: Redis unavailable, attempt allowed uncounted")
            return ALLOWED
        if wait_ms == 0:
            return ALLOWED
        return Verdict(allowed=False, retry_after=_seconds(wait_ms / 1000))

    def release(self, keys: Sequence[str]) -> None:
        try:
            self._release(keys=[self.prefix + key for key in keys], args=[])
        except redis.RedisError:
            log.exception("throttle: Redis unavailable, attempt not handed back")

    def forget(self, keys: Sequence[str]) -> None:
        try:
            self.client.delete(*[self.prefix + key for key in keys])
        except redis.RedisError:
            log.exception("throttle: Redis unavailable, counters not dropped")

    def count(self, key: str) -> int:
        value = self.client.get(self.prefix + key)
        return 0 if value is None else int(value)

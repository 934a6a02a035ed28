"""Counting failed logins: in Redis when one is configured, else in a write-side table.

Unlike process memory, both are shared by every server process, so N server processes do
not give an attacker N times the tries. `bookstore.bootstrap` picks the backend.
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from typing import Protocol

import redis
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from adapters.clock import as_utc, utcnow
from adapters.write_tables import (
    login_failures,
)

log = logging.getLogger(__name__)


class LoginThrottle(Protocol):
    """Counts failed logins per key ("email:..." or "ip:...") in a fixed window."""

    def retry_after(self, keys: list[str]) -> int | None:
        """Seconds until the first blocked key frees up, or None if none is blocked."""

    def record_failure(self, keys: list[str]) -> None: ...

    def reset(self, key: str) -> None: ...


class SqlLoginThrottle:
    """The counter in the write database, shared by every server process."""

    def __init__(self, engine: Engine, *, max_failures: int, window: timedelta) -> None:
        self.engine = engine
        self.max_failures = max_failures
        self.window = window
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    def retry_after(self, keys: list[str]) -> int | None:
        now = utcnow()
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(login_failures.c.window_started_at).where(
                    login_failures.c.key.in_(keys),
                    login_failures.c.failures >= self.max_failures,
                    login_failures.c.window_started_at > now - self.window,
                )
            ).all()
        if not rows:
            return None
        ends = max(as_utc(row.window_started_at) + self.window for row in rows)
        return max(1, math.ceil((ends - now).total_seconds()))

    def record_failure(self, keys: list[str]) -> None:
        now = utcnow()
        with self.engine.begin() as connection:
            for key in keys:
                counted = connection.execute(
                    update(login_failures)
                    .where(
                        login_failures.c.key == key,
                        login_failures.c.window_started_at > now - self.window,
                    )
                    .values(failures=login_failures.c.failures + 1)
                ).rowcount
                if counted:
                    continue
                # No row, or an expired window: start a new one.
                statement = self._insert(login_failures).values(
                    key=key, failures=1, window_started_at=now
                )
                connection.execute(
                    statement.on_conflict_do_update(
                        index_elements=[login_failures.c.key],
                        set_={"failures": 1, "window_started_at": now},
                    )
                )

    def reset(self, key: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(login_failures).where(login_failures.c.key == key))


class RedisLoginThrottle:
    """The counter in Redis: one key per email or address, expiring with its window."""

    prefix = "bookstore:login-failures:"

    def __init__(self, client: redis.Redis, *, max_failures: int, window: timedelta) -> None:
        self.client = client
        self.max_failures = max_failures
        self.window_seconds = max(1, int(window.total_seconds()))

    def retry_after(self, keys: list[str]) -> int | None:
        try:
            names = [self.prefix + key for key in keys]
            counts = self.client.mget(names)
            blocked = [
                name
                for name, count in zip(names, counts, strict=True)
                if count is not None and int(count) >= self.max_failures
            ]
            if not blocked:
                return None
            ttls = [int(self.client.ttl(name)) for name in blocked]
        except redis.RedisError:
            # Failing open keeps logins working through a Redis outage; it is logged loudly.
            log.exception("login throttle: Redis unavailable, not throttling")
            return None
        return max(1, *ttls)

    def record_failure(self, keys: list[str]) -> None:
        try:
            pipe = self.client.pipeline(transaction=True)
            for key in keys:
                # SET NX starts the window on the first failure only; INCR counts.
                pipe.set(self.prefix + key, 0, ex=self.window_seconds, nx=True)
                pipe.incr(self.prefix + key)
            pipe.execute()
        except redis.RedisError:
            log.exception("login throttle: Redis unavailable, failure not counted")

    def reset(self, key: str) -> None:
        try:
            self.client.delete(self.prefix + key)
        except redis.RedisError:
            log.exception("login throttle: Redis unavailable, counter not reset")

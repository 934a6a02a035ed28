"""Probes for readiness: does each store this process depends on answer, right now?

Each probe raises when its store does not answer and returns nothing when it does. Each
bounds itself where the driver lets it (a statement timeout, socket timeouts); the caller
(`api/readiness.py`) also runs them in threads it stops waiting for after a deadline, since
no driver bounds everything (a connection attempt to a host that drops packets).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis
from sqlalchemy import Engine, text

from adapters.engines import is_postgres, is_sqlite
from write_model.plumbing import EventSourcedApp

REDIS_SCHEMES = ("redis", "rediss", "unix")


def backend_of(url: str) -> str:
    """What kind of store a URL names (`postgresql`, `sqlite`, `redis`), never its host."""
    if is_postgres(url):
        return "postgresql"
    if is_sqlite(url):
        return "sqlite"
    scheme = urlsplit(url).scheme.lower()
    return "redis" if scheme in REDIS_SCHEMES else scheme.split("+", 1)[0] or "unknown"


def is_redis(url: str) -> bool:
    return backend_of(url) == "redis"


def ping_event_store(app: EventSourcedApp) -> None:
    """Read the store's head through the application's own recorder (and its pool)."""
    app.head()


def ping_database(engine: Engine, *, timeout_seconds: float) -> None:
    """One `SELECT 1` through the engine's pool; on PostgreSQL bounded by a statement
    timeout that lasts only this transaction."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            milliseconds = max(1, int(timeout_seconds * 1000))
            connection.execute(text(f"SET LOCAL statement_timeout = {milliseconds}"))
        connection.execute(text("SELECT 1"))


def ping_redis(url: str, *, timeout_seconds: float) -> None:
    """PING on a connection of its own, with connect and socket timeouts."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=timeout_seconds, socket_timeout=timeout_seconds
    )
    try:
        client.ping()
    finally:
        client.close()

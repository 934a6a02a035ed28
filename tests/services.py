"""Reaching the real PostgreSQL and Redis for tests, and making throw-away databases.

Outside CI a missing service skips the tests that need it, saying how to run them; with
CI=true it fails them instead, so a green CI run always means the real services were used.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import redis

POSTGRES_ADMIN_URL = os.environ.get(
    "BOOKSTORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("BOOKSTORE_TEST_REDIS_URL", "redis://127.0.0.1:6379")

HOW_TO_RUN = (
    "start PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (see README, "
    "'Running against PostgreSQL and Redis'), or point BOOKSTORE_TEST_POSTGRES_URL / "
    "BOOKSTORE_TEST_REDIS_URL at them"
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_missing(what: str, error: Exception) -> None:
    """Fail in CI, skip elsewhere, and say how to get the service."""
    message = f"{what} is not reachable ({error}); to run these tests, {HOW_TO_RUN}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def with_database(admin_url: str, name: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


@contextmanager
def fresh_postgres_database(prefix: str = "bookstore_test") -> Iterator[str]:
    """Create an empty database, yield its URL, drop it (with any leftover sessions)."""
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        service_missing("PostgreSQL", error)
        raise
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield with_database(POSTGRES_ADMIN_URL, name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def replace_with_copy(url: str, template_url: str) -> None:
    """Make the database at `url` a copy of the one at `template_url` (same name, so every
    URL already handed out stays right). PostgreSQL copies a template's files: far cheaper
    than running the migrations again for every test."""
    name = url.rpartition("/")[2]
    template = template_url.rpartition("/")[2]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
        # A template must have no sessions while it is copied.
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (template,),
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


@contextmanager
def fresh_redis_db() -> Iterator[str]:
    """A Redis logical database nobody else in this run uses, flushed before and after."""
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.ping()
    except redis.RedisError as error:
        service_missing("Redis", error)
        raise
    # One database per test process: pytest-xdist's workers each get their own.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker.removeprefix("gw")) if worker.startswith("gw") else os.getpid()
    db = 1 + (index % 14)
    url = f"{REDIS_URL}/{db}"
    scoped = redis.Redis.from_url(url)
    scoped.flushdb()
    try:
        yield url
    finally:
        scoped.flushdb()
        scoped.close()
        client.close()

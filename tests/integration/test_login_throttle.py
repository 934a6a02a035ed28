"""The throttle stores on the real thing: the write-side table (SQLite, PostgreSQL) and Redis.

What the policy relies on: a reservation is judged and counted in one atomic step, a refused
one counts nothing, a released one is handed back, and the wait it names is the window's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import redis
from sqlalchemy import update

from adapters.clock import utcnow
from adapters.login_throttle import Limit, LoginThrottle, RedisLoginThrottle, SqlLoginThrottle
from adapters.write_tables import login_failures
from bookstore import bootstrap
from tests.conftest import make_settings
from tests.services import fresh_redis_db

WINDOW = 900


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def throttle(request: pytest.FixtureRequest) -> Iterator[LoginThrottle]:
    """Each store: the write-side table on SQLite and on PostgreSQL, and Redis."""
    if request.param == "redis":
        with fresh_redis_db() as url:
            client = redis.Redis.from_url(url)
            try:
                yield RedisLoginThrottle(client)
            finally:
                client.close()
        return
    settings = make_settings(request.getfixturevalue(f"{request.param}_url"))
    bootstrap.migrate(settings)
    container = bootstrap.build(settings)
    try:
        assert isinstance(container.auth.throttle, SqlLoginThrottle)
        yield container.auth.throttle
    finally:
        container.close()


def test_attempts_are_let_through_up_to_the_limit_then_refused_with_the_windows_wait(
    throttle: LoginThrottle,
) -> None:
    limit = [Limit("k", 3, WINDOW)]
    assert [throttle.reserve(limit).allowed for _ in range(4)] == [True, True, True, False]
    refused = throttle.reserve(limit)
    assert not refused.allowed
    assert 0 < refused.retry_after <= WINDOW
    assert throttle.count("k") == 3  # refusals count nothing


def test_one_full_key_refuses_the_attempt_on_every_key(throttle: LoginThrottle) -> None:
    for _ in range(2):
        assert throttle.reserve([Limit("full", 2, WINDOW)]).allowed
    verdict = throttle.reserve([Limit("full", 2, WINDOW), Limit("other", 5, WINDOW)])
    assert not verdict.allowed
    assert throttle.count("other") == 0


def test_a_limit_that_applies_only_after_a_failure_lets_a_clean_key_try_once(
    throttle: LoginThrottle,
) -> None:
    def attempt(pair: str) -> bool:
        limits = [Limit(pair, 10, WINDOW), Limit("account", 2, WINDOW, only_after=pair)]
        return throttle.reserve(limits).allowed

    assert attempt("pair-a")
    assert attempt("pair-a")
    assert not attempt("pair-a")  # the account is full, and pair-a has failed on it
    assert attempt("pair-b")  # a clean pair gets its one try
    assert not attempt("pair-b")


def test_released_attempts_are_handed_back_and_forgotten_keys_start_again(
    throttle: LoginThrottle,
) -> None:
    limit = [Limit("k", 2, WINDOW)]
    assert throttle.reserve(limit).allowed
    assert throttle.reserve(limit).allowed
    throttle.release(["k", "never-counted"])
    assert throttle.count("k") == 1
    assert throttle.count("never-counted") == 0
    assert throttle.reserve(limit).allowed
    throttle.forget(["k"])
    assert throttle.count("k") == 0


def test_simultaneous_reservations_never_exceed_the_limit(throttle: LoginThrottle) -> None:
    limits = [
        Limit("pair", 10, WINDOW),
        Limit("account", 50, WINDOW),
        Limit("address", 100, WINDOW),
    ]
    start = threading.Barrier(16)

    def reserve(_: int) -> bool:
        start.wait()
        return throttle.reserve(limits).allowed

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(reserve, range(16)))

    assert outcomes.count(True) == 10
    assert throttle.count("pair") == throttle.count("account") == throttle.count("address") == 10


def test_an_ended_window_starts_afresh(database_url: str) -> None:
    settings = make_settings(database_url)
    bootstrap.migrate(settings)
    container = bootstrap.build(settings)
    try:
        throttle = container.auth.throttle
        limit = [Limit("k", 1, WINDOW)]
        assert throttle.reserve(limit).allowed
        assert not throttle.reserve(limit).allowed
        with container.write_engine.begin() as connection:
            connection.execute(
                update(login_failures).values(window_started_at=utcnow() - timedelta(hours=1))
            )
        assert throttle.reserve(limit).allowed
        assert throttle.count("k") == 1
    finally:
        container.close()


@pytest.mark.redis
def test_a_redis_key_expires_with_its_window() -> None:
    with fresh_redis_db() as url:
        client = redis.Redis.from_url(url)
        try:
            throttle = RedisLoginThrottle(client)
            assert throttle.reserve([Limit("k", 1, 30)]).allowed
            assert 0 < int(client.ttl(RedisLoginThrottle.prefix + "k")) <= 30
            throttle.release(["k"])
            assert 0 < int(client.ttl(RedisLoginThrottle.prefix + "k")) <= 30
        finally:
            client.close()

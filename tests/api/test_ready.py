"""/ready: 200 while the event store, the read database and the broker answer; else a 503
problem naming the part that does not. Mail that cannot go out is reported, not fatal.

Redis is stopped and started again for real: a `redis-server` of this test's own, on a
port of its own (never the shared one other tests use). Databases fail for real too: a
PostgreSQL database dropped under the running app.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import update

from adapters.clock import utcnow
from adapters.write_tables import mail_outbox
from api.app import create_app
from bookstore import bootstrap
from bookstore.bootstrap import Container
from tests.api.conftest import assert_problem
from tests.conftest import make_settings
from tests.live_server import free_port
from tests.services import POSTGRES_ADMIN_URL, fresh_postgres_database, service_missing

START_SECONDS = 10.0


class RedisServer:
    """A throw-away `redis-server` (no persistence) that a test may stop and restart."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            service_missing("redis-server", FileNotFoundError("redis-server is not on PATH"))
            return
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + START_SECONDS
        try:
            while True:
                with suppress(redis.ConnectionError):
                    if client.ping():
                        return
                assert self.process.poll() is None, "redis-server exited"
                assert time.monotonic() < deadline, "redis-server did not answer in time"
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def wired(**settings: object) -> Iterator[Container]:
    values = make_settings(**settings)  # type: ignore[arg-type]
    bootstrap.migrate(values)
    container = bootstrap.build(values)
    try:
        yield container
    finally:
        container.close()


def ready_body(client: TestClient) -> dict[str, object]:
    response = client.get("/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    return dict(body)


def test_ready_answers_200_with_the_event_store_and_read_database_up(
    container: Container, database_url: str
) -> None:
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    with TestClient(create_app(container)) as client:
        body = ready_body(client)

    checks = body["checks"]
    assert isinstance(checks, dict)
    assert set(checks) == {"event_store", "read_database"}
    for check in checks.values():
        assert check["status"] == "up"
        assert check["backend"] == backend
        assert check["duration_ms"] >= 0
        assert check["error"] is None
    assert body["mail"]["status"] == "ok"
    assert body["mail"]["waiting"] == 0


def test_health_stays_a_plain_liveness_check(container: Container) -> None:
    with TestClient(create_app(container)) as client:
        response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.redis
def test_ready_answers_503_naming_redis_while_it_is_stopped_and_200_once_it_is_back(
    own_redis: RedisServer, sqlite_url: str
) -> None:
    with wired(database_url=sqlite_url, broker_url=own_redis.url) as container:
        client = TestClient(create_app(container), raise_server_exceptions=False)
        assert ready_body(client)["checks"]["broker"]["status"] == "up"  # type: ignore[index]

        own_redis.stop()
        response = client.get("/ready")

        problem = assert_problem(response, 503, "not-ready")
        assert problem["failed"] == ["broker"]
        assert "broker (redis)" in str(problem["detail"])
        checks = problem["checks"]
        assert isinstance(checks, dict)
        assert checks["broker"]["status"] == "down"
        assert checks["broker"]["backend"] == "redis"
        assert checks["event_store"]["status"] == "up"
        assert checks["read_database"]["status"] == "up"
        assert str(own_redis.port) not in response.text  # no host or port for anonymous callers

        own_redis.start()
        assert ready_body(client)["checks"]["broker"]["status"] == "up"  # type: ignore[index]


def test_a_login_throttle_redis_that_does_not_answer_is_named_redis(sqlite_url: str) -> None:
    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"
    with wired(database_url=sqlite_url, redis_url=nobody_listens) as container:
        client = TestClient(create_app(container), raise_server_exceptions=False)
        response = client.get("/ready")

    problem = assert_problem(response, 503, "not-ready")
    assert problem["failed"] == ["redis"]


def drop_database(url: str) -> None:
    name = url.rpartition("/")[2]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_ready_names_the_read_database_when_its_database_is_dropped() -> None:
    with (
        fresh_postgres_database() as events_url,
        fresh_postgres_database() as read_url,
        wired(database_url=read_url, event_store_url=events_url) as container,
    ):
        client = TestClient(create_app(container), raise_server_exceptions=False)
        assert ready_body(client)

        drop_database(read_url)
        response = client.get("/ready")

        problem = assert_problem(response, 503, "not-ready")
        assert problem["failed"] == ["read_database"]
        assert "read_database (postgresql)" in str(problem["detail"])
        assert read_url.rpartition("/")[2] not in response.text


@pytest.mark.postgres
def test_ready_names_the_event_store_when_its_database_is_dropped() -> None:
    with (
        fresh_postgres_database() as events_url,
        fresh_postgres_database() as read_url,
        wired(database_url=read_url, event_store_url=events_url) as container,
    ):
        client = TestClient(create_app(container), raise_server_exceptions=False)
        assert ready_body(client)

        drop_database(events_url)
        response = client.get("/ready")

        problem = assert_problem(response, 503, "not-ready")
        assert problem["failed"] == ["event_store"]
        mail = problem["mail"]
        assert isinstance(mail, dict)
        assert mail["status"] == "unknown"  # the outbox lives beside the event store


def test_mail_waiting_with_no_smtp_in_production_is_reported_without_failing_readiness(
    sqlite_url: str,
) -> None:
    with wired(database_url=sqlite_url, env="production", smtp_url=None) as container:
        client = TestClient(create_app(container), raise_server_exceptions=False)
        outbox = container.auth.outbox
        outbox.enqueue(recipient="reader@example.com", subject="Reset", body="token")
        fresh = ready_body(client)["mail"]
        assert fresh["status"] == "ok"  # type: ignore[index]
        assert fresh["waiting"] == 1  # type: ignore[index]

        with container.write_engine.begin() as connection:
            connection.execute(update(mail_outbox).values(created_at=utcnow() - timedelta(hours=1)))
        stale = ready_body(client)["mail"]

    assert stale == {
        "status": "stuck",
        "waiting": 1,
        "oldest_waiting_seconds": pytest.approx(3600, abs=120),
        "can_send": False,
        "detail": stale["detail"],  # type: ignore[index]
    }
    assert "no SMTP server is configured" in stale["detail"]  # type: ignore[index]

"""Shared fixtures: settings and wired containers on SQLite and on a fresh PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bookstore import bootstrap
from bookstore.bootstrap import Container
from bookstore.settings import Settings
from tests.services import fresh_postgres_database

TEST_SECRET = "test-secret-key-0123456789abcdef0123456789"


def make_settings(database_url: str, **overrides: object) -> Settings:
    """Test settings: fast password hashing (the production cost is benchmarked apart)."""
    values: dict[str, object] = {
        "env": "test",
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "password_hash_time_cost": 1,
        "password_hash_memory_kib": 8 * 1024,
        "password_hash_parallelism": 1,
        "broker_url": None,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bookstore.sqlite3'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test using this runs twice: on the embedded SQLite default and on PostgreSQL."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_url")
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def container(database_url: str) -> Iterator[Container]:
    settings = make_settings(database_url)
    bootstrap.migrate(settings)
    wired = bootstrap.build(settings)
    yield wired
    wired.close()

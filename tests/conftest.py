"""Shared fixtures: settings and wired containers on SQLite and on a fresh PostgreSQL."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bookstore import bootstrap
from bookstore.bootstrap import Container
from bookstore.settings import Settings
from tests.services import fresh_postgres_database, replace_with_copy

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


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A PostgreSQL database migrated once per session: each container's is a copy of it."""
    with fresh_postgres_database("bookstore_template") as url:
        bootstrap.migrate(make_settings(url))
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session, its write-ahead log folded in."""
    path = tmp_path_factory.mktemp("template") / "bookstore.sqlite3"
    bootstrap.migrate(make_settings(f"sqlite:///{path}"))
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def migrated(request: pytest.FixtureRequest, database_url: str) -> None:
    """Bring the test's empty database to the migrations' head: a copy of the session's
    migrated template (what `bootstrap.migrate` makes; the migrations themselves are
    tested on empty databases in tests/integration/test_migrations.py)."""
    if database_url.startswith("sqlite:///"):
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copyfile(template, database_url.removeprefix("sqlite:///"))
    else:
        replace_with_copy(database_url, request.getfixturevalue("postgres_template"))


@pytest.fixture
def container(request: pytest.FixtureRequest, database_url: str) -> Iterator[Container]:
    settings = make_settings(database_url)
    migrated(request, database_url)
    wired = bootstrap.build(settings)
    yield wired
    wired.close()


@pytest.fixture
def postgres_container(request: pytest.FixtureRequest, postgres_url: str) -> Iterator[Container]:
    """A wired container on a migrated PostgreSQL database only, for tests that need it."""
    migrated(request, postgres_url)
    wired = bootstrap.build(make_settings(postgres_url))
    yield wired
    wired.close()

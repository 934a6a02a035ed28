"""`bookstore projections status|catch-up` and `bookstore worker`, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bookstore import bootstrap
from tests.conftest import TEST_SECRET, make_settings
from tests.factories import book_payload, ctx

BOOKSTORE = str(Path(sys.executable).parent / "bookstore")


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKSTORE_")}
    env.update(
        BOOKSTORE_ENV="test", BOOKSTORE_SECRET_KEY=TEST_SECRET, BOOKSTORE_DATABASE_URL=database_url
    )
    return subprocess.run(  # noqa: PLW1510 (the tests check the exit code)
        [BOOKSTORE, *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_status_shows_the_lag_and_catch_up_clears_it(database_url: str) -> None:
    settings = make_settings(database_url)
    bootstrap.migrate(settings)
    container = bootstrap.build(settings)
    try:
        container.write_app.register_book(ctx(), **book_payload())
        head = container.write_app.head()
    finally:
        container.close()

    before = run_cli(database_url, "projections", "status", "--json")
    caught_up = run_cli(database_url, "projections", "catch-up", "book_listing")
    after = run_cli(database_url, "projections", "status", "--json")
    table = run_cli(database_url, "projections", "status")

    assert before.returncode == 0, before.stderr
    lagging = {row["name"]: row for row in map(json.loads, before.stdout.splitlines())}
    assert set(lagging) == {"book_listing", "order_history", "user_directory"}
    assert (lagging["book_listing"]["lag_events"], lagging["book_listing"]["state"]) == (
        head,
        "catching_up",
    )
    assert caught_up.returncode == 0, caught_up.stderr
    assert f"book_listing: 1 events applied, at {head}" in caught_up.stdout
    statuses = {row["name"]: row for row in map(json.loads, after.stdout.splitlines())}
    assert statuses["book_listing"]["state"] == "up_to_date"
    assert statuses["order_history"]["state"] == "catching_up"  # only book_listing was asked
    assert table.returncode == 0
    assert "book_listing" in table.stdout
    assert "up_to_date" in table.stdout


def test_catch_up_of_an_unknown_projection_is_refused(sqlite_url: str) -> None:
    bootstrap.migrate(make_settings(sqlite_url))
    result = run_cli(sqlite_url, "projections", "catch-up", "nope")
    assert result.returncode == 2
    assert "book_listing" in result.stderr


def test_worker_without_a_broker_explains_the_embedded_mode(sqlite_url: str) -> None:
    result = run_cli(sqlite_url, "worker")
    assert result.returncode == 2
    assert "BOOKSTORE_BROKER_URL" in result.stderr

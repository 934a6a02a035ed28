"""`bookstore events replay`: the read model as it was at a position or a time, elsewhere.

The expected state is written out by hand from the commands the test ran, not derived by
the code under test; a replay to the head must equal what the live projections built.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from adapters.engines import is_sqlite, make_engine
from bookstore import bootstrap
from bookstore.bootstrap import Container
from bookstore.cli import app as cli
from bookstore.settings import get_settings
from projections.registry import default_projections
from projections.replay import AsOf, replay_as_of
from read_model.tables import book_listing, order_history, projection_tracking, user_directory
from tests.factories import ctx, new_customer
from tests.integration.projection_support import table_rows
from tests.services import fresh_postgres_database

runner = CliRunner()


@dataclass(frozen=True)
class History:
    """Two books at `first` (and `first_time`); then changed, one sold, one removed."""

    alpha: UUID
    beta: UUID
    customer: UUID
    first: int
    first_time: datetime
    last: int


def make_history(container: Container) -> History:
    app = container.write_app
    book = {"author": "A. Writer", "category": "fiction"}
    alpha = app.register_book(
        ctx(), title="Alpha", isbn="9780306406157", price=Decimal("10.00"), stock=5, **book
    ).id
    beta = app.register_book(
        ctx(), title="Beta", isbn="9780441013593", price=Decimal("20.00"), stock=3, **book
    ).id
    first = app.head()
    time.sleep(0.01)  # the events after this moment have later timestamps
    first_time = datetime.now(UTC)
    time.sleep(0.01)
    app.change_book(ctx(), alpha, title="Alpha II", price=Decimal("12.50"))
    customer = new_customer(app)
    app.add_to_cart(ctx(customer), customer, alpha, 2)
    app.place_order(ctx(customer), customer)
    app.remove_book(ctx(), beta)
    return History(alpha, beta, customer, first, first_time, app.head())


@pytest.fixture
def target_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database beside the live one, of the same kind."""
    if is_sqlite(database_url):
        yield f"sqlite:///{tmp_path / 'replay.sqlite3'}"
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.fixture
def target(target_url: str) -> Iterator[Engine]:
    bootstrap.run_alembic_upgrade(target_url, history="read")
    engine = make_engine(target_url, pool_size=2)
    yield engine
    engine.dispose()


def books(engine: Engine) -> dict[UUID, dict[str, Any]]:
    keep = ("title", "price_cents", "stock", "version")
    return {row["id"]: {key: row[key] for key in keep} for row in table_rows(engine, book_listing)}


def test_a_replay_as_of_a_position_holds_the_books_as_they_were_then(
    container: Container, target: Engine
) -> None:
    history = make_history(container)

    result = replay_as_of(
        container.write_app, target, default_projections(), AsOf(position=history.first)
    )

    assert books(target) == {
        history.alpha: {"title": "Alpha", "price_cents": 1000, "stock": 5, "version": 1},
        history.beta: {"title": "Beta", "price_cents": 2000, "stock": 3, "version": 1},
    }
    assert table_rows(target, order_history) == []
    assert history.customer not in {row["id"] for row in table_rows(target, user_directory)}
    assert result.last_position == history.first
    assert not result.failed
    with target.connect() as connection:
        positions = connection.execute(select(projection_tracking.c.position)).scalars().all()
    assert set(positions) == {history.first}


def test_a_replay_as_of_a_time_keeps_only_the_events_recorded_by_then(
    container: Container, target: Engine
) -> None:
    history = make_history(container)

    replay_as_of(container.write_app, target, default_projections(), AsOf(time=history.first_time))

    assert books(target) == {
        history.alpha: {"title": "Alpha", "price_cents": 1000, "stock": 5, "version": 1},
        history.beta: {"title": "Beta", "price_cents": 2000, "stock": 3, "version": 1},
    }


def test_a_replay_to_the_head_equals_the_live_read_model(
    container: Container, target: Engine
) -> None:
    history = make_history(container)
    runner_ = container.projections.runner
    for name in runner_.names:
        assert runner_.catch_up_fully(name).caught_up

    replay_as_of(container.write_app, target, default_projections(), AsOf(position=history.last))

    # Alpha changed (v2) and sold two (v3); Beta removed.
    assert books(target) == {
        history.alpha: {"title": "Alpha II", "price_cents": 1250, "stock": 3, "version": 3},
    }
    for table in (book_listing, order_history, user_directory):
        assert table_rows(target, table) == table_rows(container.read_engine, table)


@pytest.fixture
def cli_env(container: Container, monkeypatch: pytest.MonkeyPatch) -> Iterator[Container]:
    monkeypatch.setenv("BOOKSTORE_DATABASE_URL", container.settings.database_url)
    monkeypatch.delenv("BOOKSTORE_EVENT_STORE_URL", raising=False)
    monkeypatch.delenv("BOOKSTORE_BROKER_URL", raising=False)
    monkeypatch.setenv("BOOKSTORE_ENV", "development")
    get_settings.cache_clear()
    yield container
    get_settings.cache_clear()


def test_the_cli_replays_into_an_empty_database_and_refuses_a_used_one(
    cli_env: Container, target_url: str
) -> None:
    history = make_history(cli_env)
    args = ["events", "replay", "--as-of", str(history.first), "--into", target_url]

    result = runner.invoke(cli, args)

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["last_position"] == history.first
    assert summary["applied"]["book_listing"] == 2
    engine = make_engine(target_url, pool_size=1)
    try:
        assert {row["title"] for row in books(engine).values()} == {"Alpha", "Beta"}
    finally:
        engine.dispose()
    again = runner.invoke(cli, args)
    assert again.exit_code == 1
    assert "already holds a read model" in again.output


def test_the_cli_never_replays_into_the_live_database(cli_env: Container) -> None:
    make_history(cli_env)
    live = cli_env.settings.database_url

    result = runner.invoke(cli, ["events", "replay", "--as-of", "1", "--into", live])

    assert result.exit_code == 2
    assert "live database" in result.output


def test_the_cli_takes_an_rfc_3339_time_for_as_of(cli_env: Container, target_url: str) -> None:
    history = make_history(cli_env)
    moment = history.first_time.isoformat().replace("+00:00", "Z")

    result = runner.invoke(cli, ["events", "replay", "--as-of", moment, "--into", target_url])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["applied"]["book_listing"] == 2
    bad = runner.invoke(cli, ["events", "replay", "--as-of", "soon", "--into", target_url])
    assert bad.exit_code == 2

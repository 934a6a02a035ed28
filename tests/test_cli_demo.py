"""`bookstore demo-data`: a fresh install gets a catalogue to browse at once."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from bookstore import bootstrap
from bookstore.cli import app as cli
from bookstore.demo_catalogue import demo_books
from bookstore.settings import get_settings
from read_model.tables import book_listing
from write_model.isbn import isbn13_is_valid

runner = CliRunner()


@pytest.fixture
def database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A SQLite database the CLI finds through BOOKSTORE_DATABASE_URL (not migrated yet)."""
    monkeypatch.setenv("BOOKSTORE_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("BOOKSTORE_EVENT_STORE_URL", raising=False)
    monkeypatch.setenv("BOOKSTORE_ENV", "development")
    get_settings.cache_clear()
    yield sqlite_url
    get_settings.cache_clear()


def test_demo_books_are_distinct_valid_and_repeatable() -> None:
    books = list(demo_books(500, seed=7))
    assert len({book.isbn for book in books}) == 500
    assert all(isbn13_is_valid(book.isbn) for book in books)
    assert all(book.price == book.price.quantize(Decimal("0.01")) for book in books)
    assert all(0 < book.price < 1_000_000 and book.stock >= 0 for book in books)
    assert books == list(demo_books(500, seed=7))
    assert books != list(demo_books(500, seed=8))


def test_demo_data_fills_the_catalogue_and_a_second_run_adds_nothing(database: str) -> None:
    first = runner.invoke(cli, ["demo-data", "--books", "40"])
    assert first.exit_code == 0, first.output
    assert "created 40 books" in first.output
    second = runner.invoke(cli, ["demo-data", "--books", "40"])
    assert second.exit_code == 0, second.output
    assert "created 0 books, skipped 40" in second.output

    result = runner.invoke(cli, ["projections", "catch-up"])
    assert result.exit_code == 0, result.output
    container = bootstrap.build(get_settings())
    try:
        with container.read_engine.connect() as connection:
            listed = connection.execute(select(func.count()).select_from(book_listing)).scalar()
    finally:
        container.close()
    assert listed == 40

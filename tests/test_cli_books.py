"""`bookstore books import FILE [--partial]`, on SQLite and PostgreSQL: the API's import."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bookstore import bootstrap
from bookstore.cli import app as cli
from bookstore.settings import get_settings
from tests.conftest import make_settings
from tests.factories import book_create_body

runner = CliRunner()
COLUMNS = ["title", "author", "isbn", "price", "stock", "category"]


@pytest.fixture
def database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated database the CLI finds through BOOKSTORE_DATABASE_URL."""
    bootstrap.migrate(make_settings(database_url))
    monkeypatch.setenv("BOOKSTORE_DATABASE_URL", database_url)
    monkeypatch.delenv("BOOKSTORE_EVENT_STORE_URL", raising=False)
    monkeypatch.delenv("BOOKSTORE_BROKER_URL", raising=False)
    monkeypatch.setenv("BOOKSTORE_ENV", "development")
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


def write_csv(path: Path, *bodies: dict[str, Any]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(bodies)
    return path


def stored_isbns(*bodies: dict[str, Any]) -> list[bool]:
    container = bootstrap.build(get_settings())
    try:
        return [container.write_app.find_book_by_isbn(b["isbn"]) is not None for b in bodies]
    finally:
        container.close()


def report_of(output: str) -> dict[str, Any]:
    """The JSON report: the one line of standard output that is a JSON object."""
    lines = [line for line in output.splitlines() if line.startswith("{")]
    assert len(lines) == 1, output
    report: dict[str, Any] = json.loads(lines[0])
    return report


def test_a_csv_file_is_imported_and_a_second_run_changes_nothing(
    database: str, tmp_path: Path
) -> None:
    bodies = [book_create_body() for _ in range(3)]
    path = write_csv(tmp_path / "books.csv", *bodies)

    first = runner.invoke(cli, ["books", "import", str(path)])
    assert first.exit_code == 0, first.output
    assert report_of(first.stdout) == {"created": 3, "updated": 0, "failed": 0, "errors": []}
    assert stored_isbns(*bodies) == [True, True, True]

    second = runner.invoke(cli, ["books", "import", str(path)])
    assert second.exit_code == 0, second.output
    assert report_of(second.stdout) == {"created": 0, "updated": 0, "failed": 0, "errors": []}


def test_a_json_file_is_imported(database: str, tmp_path: Path) -> None:
    bodies = [book_create_body() for _ in range(2)]
    path = tmp_path / "books.json"
    path.write_text(json.dumps(bodies), encoding="utf-8")
    result = runner.invoke(cli, ["books", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert report_of(result.stdout)["created"] == 2


def test_a_file_with_bad_rows_imports_nothing_and_reports_every_one(
    database: str, tmp_path: Path
) -> None:
    good = book_create_body()
    path = write_csv(
        tmp_path / "books.csv", good, book_create_body(price="x"), book_create_body(isbn="1")
    )
    result = runner.invoke(cli, ["books", "import", str(path)])
    assert result.exit_code == 1
    report = report_of(result.stdout)
    assert (report["created"], report["failed"]) == (0, 2)
    assert [error["row"] for error in report["errors"]] == [2, 3]
    assert "nothing was imported" in result.stderr
    assert stored_isbns(good) == [False]


def test_partial_imports_the_valid_rows(database: str, tmp_path: Path) -> None:
    good = book_create_body()
    path = write_csv(tmp_path / "books.csv", good, book_create_body(price="x"))
    result = runner.invoke(cli, ["books", "import", str(path), "--partial"])
    assert result.exit_code == 0, result.output
    assert (report_of(result.stdout)["created"], report_of(result.stdout)["failed"]) == (1, 1)
    assert stored_isbns(good) == [True]


def test_a_header_lacking_a_column_is_refused_with_a_message(database: str, tmp_path: Path) -> None:
    path = tmp_path / "books.csv"
    path.write_text("title,author,isbn,price\nT,A,9780441172719,1\n", encoding="utf-8")
    result = runner.invoke(cli, ["books", "import", str(path)])
    assert result.exit_code == 1
    assert "lacks stock, category" in result.stderr
    assert result.stdout == ""


def test_a_missing_file_is_a_usage_error(database: str, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["books", "import", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2

"""`bookstore serve` will not expose the built-in development key (issue 9 item 8).

The development key is in the source: anyone can sign tokens with it. Outside development
the settings already refuse it; in development, serving on anything but loopback with it
must refuse to start, with a message saying what to do. uvicorn is replaced by a recorder:
these tests check whether `serve` would start, not a running server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from bookstore.cli import app as cli
from bookstore.settings import get_settings

runner = CliRunner()
REAL_KEY = "k9Vn2yq7rT0pXz4mWb8sLc1dFh6gJa3e-a-random-key"


@pytest.fixture
def started(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Development settings with no key set; the servers `serve` would have started."""
    monkeypatch.setenv("BOOKSTORE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("BOOKSTORE_ENV", "development")
    monkeypatch.delenv("BOOKSTORE_SECRET_KEY", raising=False)
    runs: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *_, **options: runs.append(options))
    get_settings.cache_clear()
    yield runs
    get_settings.cache_clear()


def serve(*host: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["serve", "--no-auto-migrate", *host])
    return result.exit_code, result.output


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "bookstore.example"])
def test_the_built_in_key_is_never_served_beyond_loopback(
    started: list[dict[str, Any]], host: str
) -> None:
    code, output = serve("--host", host)

    assert code != 0
    assert started == []
    assert "BOOKSTORE_SECRET_KEY" in output
    assert host in output


@pytest.mark.parametrize(
    "host", [[], ["--host", "127.0.0.1"], ["--host", "::1"], ["--host", "localhost"]]
)
def test_the_built_in_key_still_serves_on_loopback(
    started: list[dict[str, Any]], host: list[str]
) -> None:
    code, output = serve(*host)

    assert code == 0, output
    assert len(started) == 1


def test_a_key_of_ones_own_serves_on_every_interface(
    started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOOKSTORE_SECRET_KEY", REAL_KEY)
    get_settings.cache_clear()

    code, output = serve("--host", "0.0.0.0")

    assert code == 0, output
    assert started[0]["host"] == "0.0.0.0"

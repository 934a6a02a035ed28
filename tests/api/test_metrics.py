"""/metrics: who may scrape it, and that its figures follow what the service does.

Scrapes are parsed with prometheus-client's own parser, as Prometheus would read them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from bookstore import bootstrap
from bookstore.bootstrap import Container
from tests.api.conftest import assert_problem, new_account
from tests.conftest import make_settings
from tests.factories import ctx, new_book
from tests.live_server import running_server
from write_model.errors import NotFoundError

METRICS_TOKEN = "metrics-token-for-tests-0123456789"
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}
PROJECTIONS = ("book_listing", "order_history", "user_directory")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def metrics_container(database_url: str) -> Iterator[Container]:
    """A container whose settings hold a metrics token, as Prometheus would be given."""
    settings = make_settings(database_url, metrics_token=METRICS_TOKEN)
    bootstrap.migrate(settings)
    wired = bootstrap.build(settings)
    yield wired
    wired.close()


@pytest.fixture
def served(metrics_container: Container) -> Iterator[TestClient]:
    """The app with its lifespan running: projections catch up in the background."""
    with TestClient(create_app(metrics_container), raise_server_exceptions=False) as client:
        yield client


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: TestClient | httpx.Client) -> Samples:
    response = client.get("/metrics", headers=SCRAPER)
    assert response.status_code == 200, response.text
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def requests_of(samples: Samples, **labels: str) -> float:
    return value(samples, "bookstore_http_requests_total", **labels)


def test_an_anonymous_scrape_is_refused_with_a_401_problem(served: TestClient) -> None:
    response = served.get("/metrics")

    assert_problem(response, 401, "authentication-required")
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_wrong_bearer_token_is_refused_with_a_401_problem(served: TestClient) -> None:
    response = served.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}x"})

    assert_problem(response, 401, "invalid-token")


@pytest.mark.parametrize("role", ["customer", "staff"])
def test_a_scrape_by_a_user_below_admin_is_refused_with_a_403_problem(
    served: TestClient, metrics_container: Container, role: str
) -> None:
    account = new_account(served, metrics_container, role)

    response = served.get("/metrics", headers=account.headers)

    assert_problem(response, 403, "forbidden")


def test_an_admin_and_the_metrics_token_may_scrape_the_prometheus_text(
    served: TestClient, metrics_container: Container
) -> None:
    admin = new_account(served, metrics_container, "admin")

    for headers in (admin.headers, SCRAPER):
        response = served.get("/metrics", headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        families = {family.name for family in text_string_to_metric_families(response.text)}
        assert {
            "bookstore_http_requests",
            "bookstore_http_request_duration_seconds",
            "bookstore_projection_position",
            "bookstore_projection_lag_events",
            "bookstore_projection_lag_seconds",
            "bookstore_projection_rebuild_progress_ratio",
            "bookstore_commands",
            "bookstore_command_conflicts",
            "bookstore_mail_waiting",
        } <= families


def test_the_metrics_token_is_refused_when_two_authorization_headers_are_sent(
    served: TestClient,
) -> None:
    response = served.get(
        "/metrics",
        headers=[("Authorization", SCRAPER["Authorization"]), ("Authorization", "Bearer x")],
    )

    assert_problem(response, 401, "invalid-token")


def test_requests_are_counted_and_timed_by_route_template_never_by_raw_path(
    served: TestClient,
) -> None:
    before = scrape(served)
    missing = [uuid.uuid4() for _ in range(3)]
    for book_id in missing:
        assert served.get(f"/books/{book_id}").status_code == 404
    served.head("/health")
    served.get(f"/no/such/{uuid.uuid4()}")
    served.request("BREW", "/health")

    after = scrape(served)

    book = {"method": "GET", "route": "/books/{book_id}", "status": "404"}
    assert requests_of(after, **book) - requests_of(before, **book) == 3
    timed = "bookstore_http_request_duration_seconds_count"
    assert value(after, timed, **book) - value(before, timed, **book) == 3
    head = {"method": "HEAD", "route": "/health", "status": "200"}
    assert requests_of(after, **head) - requests_of(before, **head) == 1
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert requests_of(after, **unmatched) - requests_of(before, **unmatched) == 1
    other = {"method": "OTHER", "route": "/health", "status": "405"}
    assert requests_of(after, **other) - requests_of(before, **other) == 1
    routes = {dict(labels).get("route") for _, labels in after}
    assert not any(str(book_id) in str(route) for route in routes for book_id in missing)


def test_projection_lag_shows_while_the_runner_is_stopped_and_returns_to_zero_after(
    metrics_container: Container,
) -> None:
    # No lifespan: the in-process runner is not started, so events wait unprojected.
    client = TestClient(create_app(metrics_container), raise_server_exceptions=False)
    app = metrics_container.write_app
    for _ in range(3):
        new_book(app, stock=2)

    behind = scrape(client)

    lag = "bookstore_projection_lag_events"
    assert value(behind, lag, projection="book_listing") >= 3
    assert value(behind, "bookstore_projection_lag_seconds", projection="book_listing") >= 0
    assert value(behind, "bookstore_projection_position", projection="book_listing") == 0
    assert (
        value(behind, "bookstore_projection_state", projection="book_listing", state="catching_up")
        == 1
    )

    metrics_container.start()
    head = app.head()
    for name in PROJECTIONS:
        assert metrics_container.wait_for_position(name, head, timeout=10.0), name
    caught_up = scrape(client)

    for name in PROJECTIONS:
        assert value(caught_up, lag, projection=name) == 0
        assert value(caught_up, "bookstore_projection_lag_seconds", projection=name) == 0
        assert value(caught_up, "bookstore_projection_position", projection=name) == head
    state = {"projection": "book_listing", "state": "up_to_date"}
    assert value(caught_up, "bookstore_projection_state", **state) == 1
    assert value(caught_up, "bookstore_projection_status_up") == 1


def test_commands_are_counted_by_command_and_outcome(
    served: TestClient, metrics_container: Container
) -> None:
    app = metrics_container.write_app
    before = scrape(served)

    book_id = new_book(app, stock=2)
    app.restock_book(ctx(), book_id, 3)
    with pytest.raises(NotFoundError):
        app.restock_book(ctx(), uuid.uuid4(), 1)

    after = scrape(served)
    commands = "bookstore_commands_total"
    for command, outcome in [
        ("register_book", "ok"),
        ("restock_book", "ok"),
        ("restock_book", "rejected"),
    ]:
        labels = {"command": command, "outcome": outcome}
        assert value(after, commands, **labels) - value(before, commands, **labels) == 1


def test_a_command_that_lost_a_race_is_counted_once_with_one_conflict(
    served: TestClient, metrics_container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real race, made certain: just before the command saves, a second application on the
    same store restocks the same book, so the store refuses the first save and the command
    runs again."""
    app = metrics_container.write_app
    book_id = new_book(app, stock=2)
    rival = bootstrap.build_write_app(metrics_container.settings, metrics_container.write_engine)
    real_save = app._save
    interfered: list[bool] = []

    def save_after_a_rival(*args: Any) -> int:
        if not interfered:
            interfered.append(True)
            rival.restock_book(ctx(), book_id, 1)
        return real_save(*args)

    monkeypatch.setattr(app, "_save", save_after_a_rival)
    before = scrape(served)
    try:
        app.restock_book(ctx(), book_id, 5)
    finally:
        rival.close()

    after = scrape(served)
    assert app.get_book(book_id).stock == 2 + 1 + 5
    ok = {"command": "restock_book", "outcome": "ok"}
    assert (
        value(after, "bookstore_commands_total", **ok)
        - value(before, "bookstore_commands_total", **ok)
        == 1
    )
    conflicts = "bookstore_command_conflicts_total"
    assert (
        value(after, conflicts, command="restock_book")
        - value(before, conflicts, command="restock_book")
        == 1
    )


@pytest.mark.slow
def test_with_two_server_processes_every_scrape_counts_the_requests_of_both(
    sqlite_url: str, tmp_path: Path
) -> None:
    """`bookstore serve --workers 2`: the requests spread over two processes, and every
    scrape, whichever process answers it, counts all of them."""
    with (
        running_server(
            sqlite_url,
            tmp_path / "server.log",
            workers=2,
            env={"BOOKSTORE_METRICS_TOKEN": METRICS_TOKEN},
        ) as base_url,
    ):
        for _ in range(20):
            # A new connection each time, so both processes get some.
            assert httpx.get(f"{base_url}/books/{uuid.uuid4()}").status_code == 404
        book = {"method": "GET", "route": "/books/{book_id}", "status": "404"}
        seen = []
        for _ in range(6):
            with httpx.Client(base_url=base_url) as client:
                seen.append(requests_of(scrape(client), **book))

    assert seen == [20.0] * 6

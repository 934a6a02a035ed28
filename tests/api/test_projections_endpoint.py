"""GET /projections: every projection's position, head, lag, state and last error (admin)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.app import create_app
from bookstore.bootstrap import Container
from tests.api.conftest import assert_problem, new_account
from tests.factories import new_book

PROJECTIONS = ["book_listing", "order_history", "user_directory"]
FIELDS = {"name", "position", "head", "lag_events", "lag_seconds", "state", "last_error"}


def by_name(client: TestClient, headers: dict[str, str]) -> dict[str, dict[str, object]]:
    response = client.get("/projections", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"items"}
    return {item["name"]: item for item in body["items"]}


def test_an_admin_sees_every_projection_in_the_contracts_shape(
    client: TestClient, container: Container
) -> None:
    admin = new_account(client, container, "admin")
    head = container.write_app.head()
    for name in PROJECTIONS:
        assert container.wait_for_position(name, head, timeout=10.0)

    projections = by_name(client, admin.headers)

    assert list(projections) == PROJECTIONS
    for item in projections.values():
        assert set(item) >= FIELDS  # the contract's fields (the rebuild work adds more)
        assert item["position"] == item["head"] >= head
        assert item["lag_events"] == 0
        assert item["lag_seconds"] == 0
        assert item["state"] == "up_to_date"
        assert item["last_error"] is None


def test_anonymous_callers_get_401_and_users_below_admin_403(
    client: TestClient, container: Container
) -> None:
    assert_problem(client.get("/projections"), 401, "authentication-required")
    for role in ("customer", "staff"):
        account = new_account(client, container, role)
        assert_problem(client.get("/projections", headers=account.headers), 403, "forbidden")


def test_a_projection_that_falls_behind_shows_its_lag_until_it_catches_up(
    container: Container,
) -> None:
    # No lifespan: the in-process runner is not started, so new events wait unprojected.
    client = TestClient(create_app(container), raise_server_exceptions=False)
    admin = new_account(client, container, "admin")
    for _ in range(2):
        new_book(container.write_app, stock=1)

    behind = by_name(client, admin.headers)["book_listing"]

    assert behind["state"] == "catching_up"
    assert behind["lag_events"] >= 2  # type: ignore[operator]
    assert behind["position"] < behind["head"]  # type: ignore[operator]

    container.start()
    head = container.write_app.head()
    assert container.wait_for_position("book_listing", head, timeout=10.0)
    caught_up = by_name(client, admin.headers)["book_listing"]

    assert caught_up["state"] == "up_to_date"
    assert caught_up["lag_events"] == 0
    assert caught_up["position"] == head

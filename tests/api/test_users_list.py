"""GET /users: the admin's list, from the user_directory projection, read-your-writes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api import deps
from bookstore.bootstrap import Container
from tests.api.conftest import PASSWORD, Account, assert_problem, new_account


def list_users(client: TestClient, admin: Account, after: int, **params: object) -> dict:  # type: ignore[type-arg]
    response = client.get(
        "/users",
        params=params,
        headers={**admin.headers, "X-Min-Event-Position": str(after)},
    )
    assert response.status_code == 200, response.text
    assert int(response.headers["x-projection-position"]) >= after
    return dict(response.json())


def test_a_new_user_is_listed_by_the_next_read_that_asks_for_its_position(
    client: TestClient, container: Container
) -> None:
    admin = new_account(client, container, "admin")
    response = client.post(
        "/auth/register",
        json={"email": "Zoe@Example.com", "password": PASSWORD, "full_name": "Zoe"},
    )
    position = int(response.headers["x-event-position"])
    page = list_users(client, admin, position, q="zoe@")
    assert page["total"] == 1
    (zoe,) = page["items"]
    assert zoe == {**response.json()}


def test_filters_and_pages(client: TestClient, container: Container) -> None:
    admin = new_account(client, container, "admin")
    staff = new_account(client, container, "staff")
    customers = [new_account(client, container) for _ in range(3)]
    last = client.put(
        f"/users/{customers[0].id}/active", json={"is_active": False}, headers=admin.headers
    )
    head = int(last.headers["x-event-position"])

    everyone = list_users(client, admin, head)
    assert everyone["total"] == 5
    assert [u["email"] for u in everyone["items"]] == sorted(u["email"] for u in everyone["items"])

    assert [u["id"] for u in list_users(client, admin, head, role="staff")["items"]] == [staff.id]
    assert [u["id"] for u in list_users(client, admin, head, is_active=False)["items"]] == [
        customers[0].id
    ]
    assert list_users(client, admin, head, q=customers[1].email.upper())["total"] == 1

    first = list_users(client, admin, head, limit=2, offset=0)
    second = list_users(client, admin, head, limit=2, offset=2)
    third = list_users(client, admin, head, limit=2, offset=4)
    assert (first["limit"], first["offset"], first["total"]) == (2, 0, 5)
    ids = [u["id"] for page in (first, second, third) for u in page["items"]]
    assert sorted(ids) == sorted(u["id"] for u in everyone["items"])


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"role": "emperor"}, {"is_active": "maybe"}],
)
def test_bad_filters_are_a_422(
    client: TestClient, container: Container, params: dict[str, object]
) -> None:
    admin = new_account(client, container, "admin")
    response = client.get("/users", params=params, headers=admin.headers)
    assert_problem(response, 422, "validation-error")


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "", "9" * 40])
def test_a_min_event_position_that_is_not_a_non_negative_integer_is_a_422(
    client: TestClient, container: Container, value: str
) -> None:
    admin = new_account(client, container, "admin")
    response = client.get("/users", headers={**admin.headers, "X-Min-Event-Position": value})
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["loc"] == ["header", "x-min-event-position"]  # type: ignore[index]


def test_a_position_not_reached_in_time_is_a_503_with_retry_after(
    client: TestClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deps, "PROJECTION_WAIT_SECONDS", 0.3)
    admin = new_account(client, container, "admin")
    response = client.get("/users", headers={**admin.headers, "X-Min-Event-Position": "1000000"})
    assert_problem(response, 503, "projection-lagging")
    assert int(response.headers["retry-after"]) >= 1

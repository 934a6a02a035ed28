"""/users: your own account, and roles and activation by admins."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from bookstore.bootstrap import Container
from tests.api.conftest import PASSWORD, assert_problem, login, new_account, register, unique_email


def test_me_is_the_current_user_without_any_secret(
    client: TestClient, container: Container
) -> None:
    account = new_account(client, container)
    response = client.get("/users/me", headers=account.headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "email", "full_name", "role", "is_active", "created_at"}
    assert body["id"] == account.id
    assert body["email"] == account.email
    assert "argon2" not in response.text


def test_changing_the_name_needs_no_password(client: TestClient, container: Container) -> None:
    account = new_account(client, container)
    response = client.put("/users/me", json={"full_name": "Grace Hopper"}, headers=account.headers)
    assert response.status_code == 200
    assert response.json()["full_name"] == "Grace Hopper"
    assert int(response.headers["x-event-position"]) > 0
    assert client.get("/users/me", headers=account.headers).json()["full_name"] == "Grace Hopper"


def test_changing_the_email_needs_the_current_password(
    client: TestClient, container: Container
) -> None:
    account = new_account(client, container)
    new_email = unique_email("moved")
    missing = client.put("/users/me", json={"email": new_email}, headers=account.headers)
    body = assert_problem(missing, 422, "validation-error")
    assert body["errors"][0]["loc"] == ["body", "current_password"]  # type: ignore[index]
    wrong = client.put(
        "/users/me",
        json={"email": new_email, "current_password": "not my password"},
        headers=account.headers,
    )
    assert_problem(wrong, 403, "wrong-current-password")
    right = client.put(
        "/users/me",
        json={"email": new_email.upper(), "current_password": PASSWORD},
        headers=account.headers,
    )
    assert right.status_code == 200
    assert right.json()["email"] == new_email
    login(client, new_email)
    assert (
        client.post("/auth/login", json={"email": account.email, "password": PASSWORD}).status_code
        == 401
    )
    # The old address is free again.
    register(client, account.email)


def test_changing_the_password_needs_the_current_password(
    client: TestClient, container: Container
) -> None:
    account = new_account(client, container)
    missing = client.put(
        "/users/me", json={"new_password": "new password!"}, headers=account.headers
    )
    assert_problem(missing, 422, "validation-error")
    wrong = client.put(
        "/users/me",
        json={"new_password": "new password!", "current_password": "nope nope"},
        headers=account.headers,
    )
    assert_problem(wrong, 403, "wrong-current-password")
    login(client, account.email)  # unchanged


def test_moving_to_a_taken_email_is_a_409(client: TestClient, container: Container) -> None:
    account = new_account(client, container)
    other = new_account(client, container)
    response = client.put(
        "/users/me",
        json={"email": other.email.upper(), "current_password": PASSWORD},
        headers=account.headers,
    )
    assert_problem(response, 409, "email-taken")


def test_the_same_email_in_another_case_is_no_change(
    client: TestClient, container: Container
) -> None:
    account = new_account(client, container)
    response = client.put(
        "/users/me", json={"email": account.email.upper()}, headers=account.headers
    )
    assert response.status_code == 200


# ---------------------------------------------------------------------- admin: roles


def test_an_admin_changes_a_role_and_rights_follow_at_once(
    client: TestClient, container: Container
) -> None:
    admin = new_account(client, container, "admin")
    user = new_account(client, container)
    assert (
        client.put(
            f"/users/{user.id}/role", json={"role": "admin"}, headers=user.headers
        ).status_code
        == 403
    )

    promoted = client.put(f"/users/{user.id}/role", json={"role": "admin"}, headers=admin.headers)
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "admin"
    assert int(promoted.headers["x-event-position"]) > 0
    # The token issued before the promotion now carries admin rights.
    target = new_account(client, container)
    assert (
        client.put(
            f"/users/{target.id}/role", json={"role": "staff"}, headers=user.headers
        ).status_code
        == 200
    )

    client.put(f"/users/{user.id}/role", json={"role": "customer"}, headers=admin.headers)
    demoted = client.put(f"/users/{target.id}/role", json={"role": "admin"}, headers=user.headers)
    assert_problem(demoted, 403, "forbidden")


def test_the_last_admin_cannot_be_demoted(client: TestClient, container: Container) -> None:
    admin = new_account(client, container, "admin")
    response = client.put(f"/users/{admin.id}/role", json={"role": "staff"}, headers=admin.headers)
    assert_problem(response, 409, "last-admin")
    assert client.get("/users/me", headers=admin.headers).json()["role"] == "admin"


def test_a_role_change_of_an_unknown_user_is_a_404(
    client: TestClient, container: Container
) -> None:
    admin = new_account(client, container, "admin")
    response = client.put(
        f"/users/{uuid.uuid4()}/role", json={"role": "staff"}, headers=admin.headers
    )
    assert_problem(response, 404, "not-found")


@pytest.mark.parametrize("body", [{"role": "emperor"}, {}, {"role": None}])
def test_an_invalid_role_is_a_422(
    client: TestClient, container: Container, body: dict[str, object]
) -> None:
    admin = new_account(client, container, "admin")
    response = client.put(f"/users/{admin.id}/role", json=body, headers=admin.headers)
    assert_problem(response, 422, "validation-error")


# ---------------------------------------------------------------------- admin: activation


def test_a_deactivated_user_loses_access_at_once(client: TestClient, container: Container) -> None:
    admin = new_account(client, container, "admin")
    user = new_account(client, container)
    response = client.put(
        f"/users/{user.id}/active", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert int(response.headers["x-event-position"]) > 0
    refused = client.get("/users/me", headers=user.headers)
    assert_problem(refused, 401, "invalid-token")
    assert refused.headers["www-authenticate"] == "Bearer"

    back = client.put(f"/users/{user.id}/active", json={"is_active": True}, headers=admin.headers)
    assert back.json()["is_active"] is True
    # Reactivation does not revive the sessions that deactivation ended.
    assert_problem(client.get("/users/me", headers=user.headers), 401, "invalid-token")
    login(client, user.email)


@pytest.mark.parametrize("value", [0, 1, "false", "true", "no", None, [], {}], ids=repr)
def test_is_active_must_be_a_json_boolean(
    client: TestClient, container: Container, value: object
) -> None:
    """`0` once deactivated a user (lax coercion); only `true` and `false` are booleans."""
    admin = new_account(client, container, "admin")
    user = new_account(client, container)
    response = client.put(
        f"/users/{user.id}/active", json={"is_active": value}, headers=admin.headers
    )
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["loc"] == ["body", "is_active"]  # type: ignore[index]
    assert client.get("/users/me", headers=user.headers).json()["is_active"] is True


def test_the_last_active_admin_cannot_be_deactivated(
    client: TestClient, container: Container
) -> None:
    admin = new_account(client, container, "admin")
    response = client.put(
        f"/users/{admin.id}/active", json={"is_active": False}, headers=admin.headers
    )
    assert_problem(response, 409, "last-admin")


def test_with_two_admins_one_may_step_down(client: TestClient, container: Container) -> None:
    first = new_account(client, container, "admin")
    second = new_account(client, container, "admin")
    response = client.put(f"/users/{second.id}/role", json={"role": "staff"}, headers=first.headers)
    assert response.status_code == 200
    assert_problem(
        client.put(f"/users/{first.id}/role", json={"role": "staff"}, headers=first.headers),
        409,
        "last-admin",
    )


def test_activation_of_an_unknown_user_is_a_404(client: TestClient, container: Container) -> None:
    admin = new_account(client, container, "admin")
    response = client.put(
        f"/users/{uuid.uuid4()}/active", json={"is_active": False}, headers=admin.headers
    )
    assert_problem(response, 404, "not-found")

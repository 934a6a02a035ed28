"""Registration, login (JSON and OAuth2 form), throttling and refresh-token rotation."""

from __future__ import annotations

import uuid

import bcrypt
import pytest
from fastapi.testclient import TestClient

from adapters.passwords import PasswordHasher
from api.app import create_app
from bookstore.bootstrap import Container
from tests.api.conftest import (
    PASSWORD,
    assert_problem,
    login,
    new_account,
    register,
    unique_email,
)
from tests.conftest import make_settings
from tests.services import fresh_redis_db

# ---------------------------------------------------------------------- register


def test_registering_answers_the_user_and_the_event_position(client: TestClient) -> None:
    response = client.post(
        "/auth/register",
        json={"email": "Mixed.Case@Example.COM", "password": PASSWORD, "full_name": "Ann Lee"},
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "email", "full_name", "role", "is_active", "created_at"}
    assert body["email"] == "mixed.case@example.com"
    assert body["role"] == "customer"
    assert body["is_active"] is True
    assert body["created_at"].endswith("Z")
    uuid.UUID(body["id"])
    assert int(response.headers["x-event-position"]) > 0


def test_registering_a_taken_email_in_another_case_is_a_409(client: TestClient) -> None:
    register(client, "taken@example.com")
    response = client.post(
        "/auth/register", json={"email": "TAKEN@example.com", "password": PASSWORD}
    )
    assert_problem(response, 409, "email-taken")


@pytest.mark.parametrize(
    "body",
    [
        {"email": "a@example.com", "password": "7chars!"},
        {"email": "a@example.com", "password": "x" * 129},
        {"email": "no-at-sign", "password": PASSWORD},
        {"password": PASSWORD},
        {"email": "a@example.com"},
    ],
)
def test_registering_with_an_invalid_body_is_a_422(
    client: TestClient, body: dict[str, str]
) -> None:
    assert_problem(client.post("/auth/register", json=body), 422, "validation-error")


# ---------------------------------------------------------------------- login


def test_login_with_json_gives_bearer_tokens(client: TestClient) -> None:
    email = unique_email()
    register(client, email)
    response = client.post("/auth/login", json={"email": email.upper(), "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    me = client.get("/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["email"] == email


def test_login_with_the_oauth2_form_works_like_the_docs_authorize_button(
    client: TestClient,
) -> None:
    email = unique_email()
    register(client, email)
    # What Swagger UI's password flow posts to the tokenUrl.
    response = client.post(
        "/auth/login",
        data={"grant_type": "password", "username": email, "password": PASSWORD, "scope": ""},
    )
    assert response.status_code == 200
    token = response.json()["access_token"]
    assert client.get("/users/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_unknown_email_and_wrong_password_get_the_identical_401(client: TestClient) -> None:
    email = unique_email()
    register(client, email)
    wrong = client.post("/auth/login", json={"email": email, "password": "wrong password"})
    unknown = client.post(
        "/auth/login", json={"email": unique_email(), "password": "wrong password"}
    )
    for response in (wrong, unknown):
        assert_problem(response, 401, "invalid-credentials")
        assert response.headers["www-authenticate"] == "Bearer"

    def comparable(body: dict[str, object]) -> dict[str, object]:
        return {k: v for k, v in body.items() if k != "correlation_id"}

    assert comparable(wrong.json()) == comparable(unknown.json())


def test_an_unknown_email_costs_a_password_verification_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dummy hash makes 'no such user' as slow as 'wrong password': the same argon2id
    verification runs, with the same cost parameters (checked, not timed: the speed itself
    is what bench.auth measures)."""
    from passlib.context import CryptContext

    hasher = PasswordHasher(time_cost=2, memory_kib=16 * 1024, parallelism=1)
    real = hasher.hash(PASSWORD)
    verified: list[str] = []
    original = CryptContext.verify

    def spy(self: CryptContext, secret: str, hash: str, **kwargs: object) -> bool:
        verified.append(hash)
        return bool(original(self, secret, hash, **kwargs))

    monkeypatch.setattr(CryptContext, "verify", spy)
    assert hasher.verify("wrong password", real) is False
    assert hasher.verify("wrong password", None) is False
    real_checked, dummy_checked = verified
    assert dummy_checked != real_checked

    def parameters(stored: str) -> str:
        return stored.split("$")[3]  # "m=16384,t=2,p=1" of "$argon2id$v=19$m=...$salt$hash"

    assert dummy_checked.startswith("$argon2id$")
    assert parameters(dummy_checked) == parameters(real_checked) == "m=16384,t=2,p=1"


def test_a_deactivated_user_cannot_log_in(client: TestClient, container: Container) -> None:
    admin = new_account(client, container, "admin")
    user = new_account(client, container)
    client.put(f"/users/{user.id}/active", json={"is_active": False}, headers=admin.headers)
    response = client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    assert_problem(response, 401, "invalid-credentials")


@pytest.mark.parametrize(
    ("content", "content_type", "status", "kind"),
    [
        (b"{", "application/json", 400, "malformed-json"),
        (b'{"email": "a@example.com"}', "application/json", 422, "validation-error"),
        (b"username=a%40example.com", "application/x-www-form-urlencoded", 422, "validation-error"),
        (b"hello", "text/plain", 415, "unsupported-media-type"),
    ],
)
def test_a_bad_login_body_is_a_problem(
    client: TestClient, content: bytes, content_type: str, status: int, kind: str
) -> None:
    response = client.post("/auth/login", content=content, headers={"Content-Type": content_type})
    assert_problem(response, status, kind)


def test_an_old_bcrypt_hash_still_logs_in_and_is_rehashed_with_argon2id(
    client: TestClient, container: Container
) -> None:
    email = unique_email()
    user_id = uuid.UUID(register(client, email))
    old_hash = bcrypt.hashpw(b"legacy password", bcrypt.gensalt(rounds=4)).decode()
    container.write_app.credentials.set_password_hash(user_id, old_hash)

    login(client, email, "legacy password")

    new_hash = container.write_app.password_hash_of(user_id)
    assert new_hash is not None
    assert new_hash.startswith("$argon2id$")
    login(client, email, "legacy password")


# ---------------------------------------------------------------------- throttling


def _fail(client: TestClient, email: str, ip_headers: dict[str, str] | None = None) -> int:
    response = client.post(
        "/auth/login", json={"email": email, "password": "not it"}, headers=ip_headers or {}
    )
    return response.status_code


def test_ten_failures_for_one_email_are_answered_429_with_retry_after(
    client: TestClient,
) -> None:
    email = unique_email()
    register(client, email)
    assert [_fail(client, email) for _ in range(10)] == [401] * 10
    response = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert_problem(response, 429, "login-throttled")
    retry_after = int(response.headers["retry-after"])
    assert 0 < retry_after <= 15 * 60


def test_the_throttle_counts_failures_per_client_address_across_emails(
    container: Container,
) -> None:
    from bookstore import bootstrap

    # The per-address limit is looser by default (100 per 15 min); 10 keeps this short.
    settings = container.settings.model_copy(update={"login_max_failures_per_address": 10})
    first, second = bootstrap.build(settings), bootstrap.build(settings)  # two processes
    with (
        TestClient(create_app(first), client=("203.0.113.7", 5000)) as attacker,
        TestClient(create_app(second), client=("198.51.100.1", 5000)) as bystander,
    ):
        for _ in range(10):
            assert _fail(attacker, unique_email()) == 401
        assert_problem(
            attacker.post("/auth/login", json={"email": unique_email(), "password": "x"}),
            429,
            "login-throttled",
        )
        assert _fail(bystander, unique_email()) == 401


def test_a_success_clears_the_email_counter(container: Container) -> None:
    from bookstore import bootstrap

    second = bootstrap.build(container.settings)
    with (
        TestClient(create_app(container), client=("192.0.2.1", 5000)) as first_place,
        TestClient(create_app(second), client=("192.0.2.2", 5000)) as second_place,
    ):
        email = unique_email()
        register(first_place, email)
        assert [_fail(first_place, email) for _ in range(9)] == [401] * 9
        login(first_place, email)
        # Without the reset, these would make 18 failures for the email and block it.
        assert [_fail(second_place, email) for _ in range(9)] == [401] * 9
        login(second_place, email)


def test_the_throttle_lives_in_redis_when_one_is_configured(database_url: str) -> None:
    from bookstore import bootstrap

    with fresh_redis_db() as redis_url:
        settings = make_settings(database_url, redis_url=redis_url)
        bootstrap.migrate(settings)
        container = bootstrap.build(settings)
        try:
            with TestClient(create_app(container)) as client:
                email = unique_email()
                for _ in range(10):
                    assert _fail(client, email) == 401
                response = client.post("/auth/login", json={"email": email, "password": "x"})
                assert_problem(response, 429, "login-throttled")
                assert 0 < int(response.headers["retry-after"]) <= 900
            import redis

            keys = redis.Redis.from_url(redis_url).keys("bookstore:throttle:*")
            assert any(email.encode() in key for key in keys), keys
        finally:
            container.close()


# ---------------------------------------------------------------------- refresh


def test_a_refresh_token_gives_a_new_pair_once(client: TestClient, container: Container) -> None:
    account = new_account(client, container)
    first = client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert first.status_code == 200
    pair = first.json()
    assert pair["refresh_token"] != account.refresh_token
    me = client.get("/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 200
    again = client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert_problem(again, 401, "invalid-refresh-token")
    assert again.headers["www-authenticate"] == "Bearer"


def test_reusing_a_refresh_token_revokes_its_whole_family(
    client: TestClient, container: Container
) -> None:
    account = new_account(client, container)
    rotated = client.post("/auth/refresh", json={"refresh_token": account.refresh_token}).json()
    # A thief replays the old token: refused, and the legitimate newer one dies with it.
    replay = client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert replay.status_code == 401
    newer = client.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert_problem(newer, 401, "invalid-refresh-token")


def test_another_login_is_another_family(client: TestClient, container: Container) -> None:
    account = new_account(client, container)
    other = login(client, account.email)
    client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    # One family's rotation leaves the other's token as it was.
    assert (
        client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]}).status_code
        == 200
    )


def test_a_reuse_ends_the_other_logins_of_the_user_too(
    client: TestClient, container: Container
) -> None:
    # Someone else holds a token of this user: every session ends (issue 9 item 3), the
    # other devices' included, and the user logs in again.
    account = new_account(client, container)
    other = login(client, account.email)
    client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    client.post("/auth/refresh", json={"refresh_token": account.refresh_token})  # reuse
    assert (
        client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]}).status_code
        == 401
    )
    bearer = {"Authorization": f"Bearer {other['access_token']}"}
    assert client.get("/users/me", headers=bearer).status_code == 401
    assert login(client, account.email)["access_token"]


@pytest.mark.parametrize("garbage", ["", "not.a.jwt", "x" * 5000])
def test_a_malformed_refresh_token_is_refused(client: TestClient, garbage: str) -> None:
    response = client.post("/auth/refresh", json={"refresh_token": garbage})
    assert response.status_code in (401, 422)
    assert response.headers["content-type"] == "application/problem+json"


def test_an_access_token_is_not_a_refresh_token(client: TestClient, container: Container) -> None:
    account = new_account(client, container)
    response = client.post("/auth/refresh", json={"refresh_token": account.access_token})
    assert_problem(response, 401, "invalid-refresh-token")


def test_deactivation_ends_refresh(client: TestClient, container: Container) -> None:
    admin = new_account(client, container, "admin")
    user = new_account(client, container)
    client.put(f"/users/{user.id}/active", json={"is_active": False}, headers=admin.headers)
    client.put(f"/users/{user.id}/active", json={"is_active": True}, headers=admin.headers)
    # Reactivated, but the refresh families of before the deactivation stay revoked.
    response = client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert_problem(response, 401, "invalid-refresh-token")

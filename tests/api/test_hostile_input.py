"""Hostile and odd requests, as an independent client would send them: every one gets a
clear problem (never a 500), and a refused command changes nothing."""

from __future__ import annotations

import asyncio
import json
import unicodedata
import uuid
from collections.abc import Iterator, MutableMapping
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.middleware import DEFAULT_MAX_BODY_BYTES
from bookstore.bootstrap import Container
from tests.api.conftest import PASSWORD, assert_problem, login, new_account, unique_email
from tests.api.test_password_reset import reset_token_for

JSON = {"Content-Type": "application/json"}


def _register_body(email: str | None = None) -> dict[str, str]:
    return {"email": email or unique_email(), "password": PASSWORD}


# ---------------------------------------------------------------- content types, encodings


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml", None],
)
def test_a_json_route_answers_415_to_another_content_type(
    client: TestClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/auth/register", content=b'{"email": "x@example.com"}', headers=headers)
    body = assert_problem(response, 415, "unsupported-media-type")
    assert "application/json" in str(body["detail"])


def test_a_json_body_in_another_charset_is_malformed_json_naming_utf8(
    client: TestClient,
) -> None:
    body = '{"email": "ä@example.com", "password": "pässword 123"}'.encode("latin-1")
    response = client.post(
        "/auth/register",
        content=body,
        headers={"Content-Type": "application/json; charset=latin-1"},
    )
    problem = assert_problem(response, 400, "malformed-json")
    assert "UTF-8" in str(problem["detail"])


def test_a_json_content_type_with_a_utf8_charset_is_fine(client: TestClient) -> None:
    response = client.post(
        "/auth/register",
        content=b'{"email": "%s", "password": "%s"}' % (unique_email().encode(), PASSWORD.encode()),
        headers={"Content-Type": "application/json; charset=UTF-8"},
    )
    assert response.status_code == 201, response.text


def test_every_json_command_checks_the_content_type(
    client: TestClient, container: Container
) -> None:
    admin = new_account(client, container, "admin")
    form = {"Content-Type": "application/x-www-form-urlencoded", **admin.headers}
    for method, path in [
        ("POST", "/auth/refresh"),
        ("POST", "/auth/password-reset"),
        ("POST", "/auth/password-reset/confirm"),
        ("PUT", "/users/me"),
        ("PUT", f"/users/{admin.id}/role"),
        ("PUT", f"/users/{admin.id}/active"),
    ]:
        response = client.request(method, path, content=b"a=b", headers=form)
        assert_problem(response, 415, "unsupported-media-type")


@pytest.mark.parametrize("path", ["/auth/register", "/auth/login"])
def test_a_body_that_is_not_utf8_is_malformed_json(client: TestClient, path: str) -> None:
    response = client.post(
        path, content=b'{"email": "\xff\xfe@example.com", "password": "x"}', headers=JSON
    )
    assert_problem(response, 400, "malformed-json")


@pytest.mark.parametrize("path", ["/auth/register", "/auth/login", "/auth/refresh"])
def test_a_body_nested_too_deeply_to_parse_is_malformed_json_not_a_500(
    client: TestClient, path: str
) -> None:
    response = client.post(path, content=b"[" * 100_000 + b"]" * 100_000, headers=JSON)
    assert_problem(response, 400, "malformed-json")


# ---------------------------------------------------------------- body size


def test_a_body_declared_larger_than_the_limit_is_a_413_and_nothing_happens(
    client: TestClient, container: Container
) -> None:
    email = unique_email()
    padding = "x" * DEFAULT_MAX_BODY_BYTES
    response = client.post(
        "/auth/register", json={**_register_body(email), "full_name": padding}, headers=JSON
    )
    body = assert_problem(response, 413, "payload-too-large")
    assert str(DEFAULT_MAX_BODY_BYTES) in str(body["detail"])
    assert container.write_app.find_user_by_email(email) is None


@pytest.mark.parametrize("path", ["/auth/login", "/auth/register"])
def test_a_streamed_body_is_cut_off_at_the_limit_with_a_413(client: TestClient, path: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"email": "big@example.com", "password": "long enough", "full_name": "'
        for _ in range(DEFAULT_MAX_BODY_BYTES // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    response = client.post(path, content=chunks(), headers=JSON)
    assert_problem(response, 413, "payload-too-large")


def test_a_body_under_the_limit_is_read(client: TestClient) -> None:
    response = client.post(
        "/auth/register", json={**_register_body(), "full_name": "x" * 150}, headers=JSON
    )
    assert response.status_code == 201, response.text


# ---------------------------------------------------------------- text with control characters


@pytest.mark.parametrize("name", ["a\x00b", "line\nbreak", "tab\there", "del\x7f"])
def test_a_name_with_control_characters_is_a_422(
    client: TestClient, container: Container, name: str
) -> None:
    response = client.post("/auth/register", json={**_register_body(), "full_name": name})
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["loc"] == ["body", "full_name"]  # type: ignore[index]

    account = new_account(client, container)
    response = client.put("/users/me", json={"full_name": name}, headers=account.headers)
    assert_problem(response, 422, "validation-error")
    assert client.get("/users/me", headers=account.headers).json()["full_name"] == "Test User"


def test_unicode_names_are_fine(client: TestClient) -> None:
    response = client.post("/auth/register", json={**_register_body(), "full_name": "Zoë 山田"})
    assert response.status_code == 201
    assert response.json()["full_name"] == "Zoë 山田"


def test_a_login_email_with_a_nul_is_a_422_not_a_500(client: TestClient) -> None:
    # PostgreSQL refuses NUL in text: this used to reach the database and fail there.
    response = client.post("/auth/login", json={"email": "a\x00@example.com", "password": "x"})
    assert_problem(response, 422, "validation-error")
    response = client.post("/auth/login", data={"username": "a\x00@example.com", "password": "x"})
    assert_problem(response, 422, "validation-error")


def test_a_user_search_with_a_nul_is_a_422(client: TestClient, container: Container) -> None:
    admin = new_account(client, container, "admin")
    response = client.get("/users", params={"q": "a\x00"}, headers=admin.headers)
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["loc"] == ["query", "q"]  # type: ignore[index]


# ---------------------------------------------------------------- pages and positions


@pytest.mark.parametrize("offset", ["9223372036854775808", "99999999999999999999999"])
def test_an_offset_beyond_any_database_range_is_a_422(
    client: TestClient, container: Container, offset: str
) -> None:
    admin = new_account(client, container, "admin")
    response = client.get("/users", params={"offset": offset}, headers=admin.headers)
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["loc"] == ["query", "offset"]  # type: ignore[index]


def test_a_large_offset_within_range_is_an_empty_page(
    client: TestClient, container: Container
) -> None:
    admin = new_account(client, container, "admin")
    response = client.get("/users", params={"offset": 2**31 - 1}, headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["items"] == []


def test_a_min_event_position_too_long_says_so(client: TestClient, container: Container) -> None:
    admin = new_account(client, container, "admin")
    headers = {**admin.headers, "X-Min-Event-Position": "9" * 19}
    body = assert_problem(client.get("/users", headers=headers), 422, "validation-error")
    assert "18 digits" in str(body["detail"])


# ---------------------------------------------------------------- the Authorization header


def test_two_authorization_headers_are_refused(client: TestClient, container: Container) -> None:
    account = new_account(client, container)
    good = f"Bearer {account.access_token}"
    for pair in [[good, "Bearer nonsense"], ["Bearer nonsense", good], [good, good]]:
        headers = [("Authorization", value) for value in pair]
        response = client.get("/users/me", headers=headers)
        assert_problem(response, 401, "invalid-token")
        assert response.headers["www-authenticate"] == "Bearer"


def test_the_scheme_is_case_insensitive(client: TestClient, container: Container) -> None:
    account = new_account(client, container)
    response = client.get("/users/me", headers={"Authorization": f"bearer {account.access_token}"})
    assert response.status_code == 200


# ---------------------------------------------------------------- HEAD, OPTIONS, slashes


def test_head_is_answered_wherever_get_is(client: TestClient, container: Container) -> None:
    get = client.get("/health")
    head = client.head("/health", headers={"X-Request-ID": "head-1"})
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["x-request-id"] == "head-1"

    account = new_account(client, container)
    assert client.head("/users/me", headers=account.headers).status_code == 200
    refused = client.head("/users/me")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.content == b""


def test_head_on_a_post_only_route_is_a_405(client: TestClient) -> None:
    response = client.head("/auth/login")
    assert response.status_code == 405
    assert "HEAD" not in response.headers["allow"]


def test_options_names_the_allowed_methods(client: TestClient) -> None:
    response = client.options("/users/me")
    assert response.status_code == 204
    assert {m.strip() for m in response.headers["allow"].split(",")} == {
        "GET",
        "HEAD",
        "OPTIONS",
        "PUT",
    }
    response = client.options("/auth/login")
    assert response.status_code == 204
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"OPTIONS", "POST"}


def test_options_on_an_unknown_path_is_a_404_problem(client: TestClient) -> None:
    assert_problem(client.options("/no/such/thing"), 404, "not-found")


@pytest.mark.parametrize("path", ["/users/me/", "/health/", "/users/"])
def test_a_trailing_slash_is_a_404_problem_naming_the_path_not_a_redirect(
    client: TestClient, container: Container, path: str
) -> None:
    account = new_account(client, container, "admin")
    response = client.get(
        path, headers={**account.headers, "Host": "evil.example"}, follow_redirects=False
    )
    body = assert_problem(response, 404, "not-found")
    assert "location" not in response.headers
    assert f"did you mean {path.rstrip('/')}" in str(body["detail"])


def test_a_post_with_a_trailing_slash_registers_nobody(
    client: TestClient, container: Container
) -> None:
    email = unique_email()
    response = client.post("/auth/register/", json=_register_body(email), follow_redirects=False)
    assert_problem(response, 404, "not-found")
    assert container.write_app.find_user_by_email(email) is None


# ---------------------------------------------------------------- atomicity


def test_a_refused_account_change_changes_nothing_at_all(
    client: TestClient, container: Container
) -> None:
    """Email taken, with a new password and name in the same request: 409, and the name,
    the email, the password and every session stay as they were."""
    taken = new_account(client, container)
    account = new_account(client, container)
    before = client.get("/users/me", headers=account.headers).json()
    response = client.put(
        "/users/me",
        json={
            "email": taken.email.upper(),
            "new_password": "a brand new password",
            "current_password": PASSWORD,
            "full_name": "Someone Else",
        },
        headers=account.headers,
    )
    assert_problem(response, 409, "email-taken")
    assert "x-event-position" not in response.headers
    assert client.get("/users/me", headers=account.headers).json() == before
    login(client, account.email, PASSWORD)  # the old password still works
    refused = client.post(
        "/auth/login", json={"email": account.email, "password": "a brand new password"}
    )
    assert_problem(refused, 401, "invalid-credentials")
    refreshed = client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refreshed.status_code == 200  # the session was not ended either


# ---------------------------------------------------------------- email normal forms, timing


def test_login_takes_the_email_in_either_unicode_normal_form(client: TestClient) -> None:
    composed = f"j\u00f6rg.{uuid.uuid4().hex[:8]}@b\u00fccher.example"
    response = client.post("/auth/register", json={"email": composed, "password": PASSWORD})
    assert response.status_code == 201, response.text
    decomposed = unicodedata.normalize("NFD", composed).upper()
    assert decomposed != composed.upper()
    login(client, decomposed)


def test_a_reset_request_is_answered_before_any_reset_work_is_done(
    client: TestClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 202 must not wait for the token and the mail: the extra writes for a known email
    made its answer measurably slower than an unknown one's (an existence oracle)."""
    account = new_account(client, container)
    order: list[str] = []
    issue = container.auth.reset_tokens.issue

    def recording_issue(user_id: uuid.UUID, *, ttl: timedelta) -> str:
        order.append("token issued")
        return issue(user_id, ttl=ttl)

    monkeypatch.setattr(container.auth.reset_tokens, "issue", recording_issue)
    app = create_app(container)  # called directly: it sees when the answer went out
    body = json.dumps({"email": account.email}).encode()
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/auth/password-reset",
        "raw_path": b"/auth/password-reset",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
        "client": ("127.0.0.1", 1234),
        "server": ("test", 80),
    }
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])
        if message["type"] == "http.response.body" and not message.get("more_body"):
            order.append("answered")

    asyncio.run(app(scope, receive, send))
    assert statuses == [202]
    assert order == ["answered", "token issued"]
    assert reset_token_for(container, account.email)


def test_a_failing_reset_mail_still_answers_202(
    client: TestClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = new_account(client, container)

    def broken(*_: object, **__: object) -> str:
        raise RuntimeError("database away")

    monkeypatch.setattr(container.auth.reset_tokens, "issue", broken)
    response = client.post("/auth/password-reset", json={"email": account.email})
    assert response.status_code == 202


def test_an_account_change_that_fails_before_any_write_leaves_the_name_alone(
    client: TestClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Name and password in one request, and hashing the new password fails: the name
    must not have changed on its own (the hash is now made before the first write)."""
    account = new_account(client, container)

    def out_of_memory(_: str) -> str:
        raise MemoryError

    monkeypatch.setattr(container.hasher, "hash", out_of_memory)
    response = client.put(
        "/users/me",
        json={
            "full_name": "Half Done",
            "new_password": "another long password",
            "current_password": PASSWORD,
        },
        headers=account.headers,
    )
    assert_problem(response, 500, "internal-error")
    assert client.get("/users/me", headers=account.headers).json()["full_name"] == "Test User"

"""Auth hardening (issue 9): lost password changes, the refresh race, text, token lifetimes.

Each test reproduces a defect the review found. The races run with threads against the
real database (SQLite and PostgreSQL; the many-trial ones on PostgreSQL, where requests
truly overlap); where a test needs two requests in one exact order, it holds the first at
the point that matters with an event, never with a sleep.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import bcrypt
import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from adapters import refresh_tokens as refresh_token_module
from api.app import create_app
from api.schemas.auth import LoginForm, LoginRequest
from bookstore import bootstrap
from bookstore.bootstrap import Container
from bookstore.settings import Settings
from tests.api.conftest import PASSWORD, assert_problem, new_account, register, unique_email
from tests.conftest import make_settings

LEGACY = "legacy password"
NEW_PASSWORD = "a brand new password"
TRIALS = 12

# The trials make many requests from one test client: room enough under every limit.
ROOMY_LIMITS: dict[str, Any] = {
    "register_max_per_address": 100_000,
    "password_reset_max_per_address": 100_000,
    "password_reset_confirm_max_per_address": 100_000,
    "login_max_failures_per_address": 100_000,
    "login_max_failures": 100_000,
}


@pytest.fixture
def container(database_url: str) -> Iterator[Container]:
    """The shared fixture's container, with the per-address limits out of the way."""
    settings = make_settings(database_url, **ROOMY_LIMITS)
    bootstrap.migrate(settings)
    wired = bootstrap.build(settings)
    yield wired
    wired.close()


@pytest.fixture
def postgres_site(postgres_url: str) -> Iterator[tuple[TestClient, Container]]:
    """A server on PostgreSQL alone, for the many-trial races."""
    settings = make_settings(postgres_url, **ROOMY_LIMITS)
    bootstrap.migrate(settings)
    wired = bootstrap.build(settings)
    with TestClient(create_app(wired), raise_server_exceptions=False) as client:
        yield client, wired


def _status_of_login(client: TestClient, email: str, password: str) -> int:
    response = client.post("/auth/login", json={"email": email, "password": password})
    return response.status_code


def _user_with_legacy_hash(client: TestClient, container: Container) -> tuple[str, uuid.UUID]:
    """A user whose stored hash is an old bcrypt one (login will upgrade it)."""
    email = unique_email("legacy")
    user_id = uuid.UUID(register(client, email))
    legacy_hash = bcrypt.hashpw(LEGACY.encode(), bcrypt.gensalt(rounds=10)).decode()
    container.write_app.credentials.set_password_hash(user_id, legacy_hash)
    return email, user_id


def _reset_token(container: Container, user_id: uuid.UUID) -> str:
    return container.auth.reset_tokens.issue(user_id, ttl=timedelta(minutes=30))


# ------------------------------------------------------- item 2: no lost password change


def test_a_login_upgrading_an_old_hash_cannot_undo_a_reset_made_meanwhile(
    client: TestClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    email, user_id = _user_with_legacy_hash(client, container)
    token = _reset_token(container, user_id)
    upgrading = threading.Event()
    reset_done = threading.Event()
    real_hash = container.hasher.hash

    def hash_holding_the_upgrade(password: str) -> str:
        if password == LEGACY:  # the login's upgrade, after it verified the old hash
            upgrading.set()
            assert reset_done.wait(30)
        return real_hash(password)

    monkeypatch.setattr(container.hasher, "hash", hash_holding_the_upgrade)
    with ThreadPoolExecutor(max_workers=1) as pool:
        logging_in = pool.submit(
            client.post, "/auth/login", json={"email": email, "password": LEGACY}
        )
        assert upgrading.wait(30)
        reset = client.post(
            "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
        )
        reset_done.set()
        assert logging_in.result().status_code == 200
    assert reset.status_code == 204

    assert _status_of_login(client, email, NEW_PASSWORD) == 200
    assert _status_of_login(client, email, LEGACY) == 401


@pytest.mark.postgres
def test_logins_racing_resets_never_bring_the_old_password_back(
    postgres_site: tuple[TestClient, Container],
) -> None:
    client, container = postgres_site
    revived: list[int] = []
    for trial in range(TRIALS):
        email, user_id = _user_with_legacy_hash(client, container)
        token = _reset_token(container, user_id)
        start = threading.Barrier(2)

        def log_in(email: str = email, start: threading.Barrier = start) -> httpx.Response:
            start.wait()
            return client.post("/auth/login", json={"email": email, "password": LEGACY})

        def reset(token: str = token, start: threading.Barrier = start) -> httpx.Response:
            start.wait()
            return client.post(
                "/auth/password-reset/confirm",
                json={"token": token, "new_password": NEW_PASSWORD},
            )

        with ThreadPoolExecutor(max_workers=2) as pool:
            logged_in, was_reset = pool.submit(log_in), pool.submit(reset)
            # The login may come first (200) or after the reset (401): both are fine.
            assert logged_in.result().status_code in (200, 401)
            assert was_reset.result().status_code == 204
        if (
            _status_of_login(client, email, NEW_PASSWORD) != 200
            or _status_of_login(client, email, LEGACY) != 401
        ):
            revived.append(trial)
    assert revived == [], f"the old password came back in trials {revived} of {TRIALS}"


# ------------------------------------------------------- item 3: the refresh-token race


def _refresh(client: TestClient, token: str) -> httpx.Response:
    return client.post("/auth/refresh", json={"refresh_token": token})


def _me(client: TestClient, access_token: str) -> int:
    headers = {"Authorization": f"Bearer {access_token}"}
    return client.get("/users/me", headers=headers).status_code


def test_a_reused_refresh_token_also_ends_the_access_tokens_of_its_family(
    client: TestClient, container: Container
) -> None:
    account = new_account(client, container)
    rotated = _refresh(client, account.refresh_token).json()
    assert _me(client, rotated["access_token"]) == 200

    assert_problem(_refresh(client, account.refresh_token), 401, "invalid-refresh-token")

    assert _me(client, rotated["access_token"]) == 401
    assert _me(client, account.access_token) == 401
    assert _refresh(client, rotated["refresh_token"]).status_code == 401


@pytest.mark.postgres
def test_three_simultaneous_refreshes_leave_no_session_alive(
    postgres_site: tuple[TestClient, Container],
) -> None:
    client, container = postgres_site
    refresh_survivors: list[int] = []
    access_survivors: list[int] = []
    for trial in range(TRIALS):
        account = new_account(client, container)
        start = threading.Barrier(3)

        def refresh(
            token: str = account.refresh_token, start: threading.Barrier = start
        ) -> httpx.Response:
            start.wait()
            return _refresh(client, token)

        with ThreadPoolExecutor(max_workers=3) as pool:
            answers = [f.result() for f in [pool.submit(refresh) for _ in range(3)]]
        winners = [a.json() for a in answers if a.status_code == 200]
        assert len(winners) <= 1
        assert sorted(a.status_code for a in answers)[1:] == [401, 401]
        # Two parties held one token: whatever the winner got must be dead too.
        for pair in winners:
            if _refresh(client, pair["refresh_token"]).status_code != 401:
                refresh_survivors.append(trial)
            if _me(client, pair["access_token"]) != 401:
                access_survivors.append(trial)
    assert (refresh_survivors, access_survivors) == ([], []), (
        f"of {TRIALS} trials, the winner's refresh token survived in {refresh_survivors}, "
        f"its access token in {access_survivors}"
    )


# ------------------------------------------------------- item 11: lifetimes of tokens


def test_a_reset_token_dies_when_the_password_changes(
    client: TestClient, container: Container
) -> None:
    account = new_account(client, container)
    token = _reset_token(container, uuid.UUID(account.id))
    changed = client.put(
        "/users/me",
        json={"new_password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=account.headers,
    )
    assert changed.status_code == 200

    confirm = client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": "yet another one"}
    )
    assert_problem(confirm, 400, "invalid-reset-token")
    assert _status_of_login(client, account.email, NEW_PASSWORD) == 200


def test_a_reset_token_dies_when_the_email_changes(
    client: TestClient, container: Container
) -> None:
    account = new_account(client, container)
    token = _reset_token(container, uuid.UUID(account.id))
    moved = unique_email("moved")
    changed = client.put(
        "/users/me",
        json={"email": moved, "current_password": PASSWORD},
        headers=account.headers,
    )
    assert changed.status_code == 200

    confirm = client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert_problem(confirm, 400, "invalid-reset-token")
    assert _status_of_login(client, moved, PASSWORD) == 200


def test_a_session_has_an_absolute_lifetime_of_thirty_days_by_default() -> None:
    assert Settings().session_max_lifetime_seconds == 30 * 24 * 3600


def test_refreshing_fails_once_the_session_is_older_than_its_lifetime(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(database_url, session_max_lifetime_seconds=3600)
    bootstrap.migrate(settings)
    wired = bootstrap.build(settings)
    with TestClient(create_app(wired), raise_server_exceptions=False) as client:
        account = new_account(client, wired)
        # Refreshed within the hour: fine.
        pair = _refresh(client, account.refresh_token).json()
        # Two hours on (every token itself still fresh): the session is over.
        later = datetime.now(UTC) + timedelta(hours=2)
        monkeypatch.setattr(refresh_token_module, "utcnow", lambda: later)
        assert_problem(_refresh(client, pair["refresh_token"]), 401, "invalid-refresh-token")


# ------------------------------------------------------- item 4: lone surrogates


def _raw_json(client: TestClient, method: str, path: str, text: str, **kw: Any) -> httpx.Response:
    """Send `text` as the JSON body, byte for byte (httpx cannot encode a lone surrogate)."""
    headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
    return client.request(method, path, content=text.encode(), headers=headers, **kw)


def test_a_lone_surrogate_in_a_name_is_a_422_not_a_500(
    client: TestClient, container: Container
) -> None:
    account = new_account(client, container)
    response = _raw_json(
        client, "PUT", "/users/me", '{"full_name": "\\ud800"}', headers=account.headers
    )
    assert_problem(response, 422, "validation-error")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/auth/register", {"email": "x@example.com", "password": "\\ud800" * 8}),
        (
            "/auth/register",
            {"email": "x@example.com", "password": PASSWORD, "full_name": "\\udc00"},
        ),
        ("/auth/login", {"email": "\\ud800@example.com", "password": PASSWORD}),
        ("/auth/login", {"email": "x@example.com", "password": "\\ud800"}),
        ("/auth/password-reset/confirm", {"token": "\\ud800", "new_password": PASSWORD}),
        ("/auth/password-reset/confirm", {"token": "abc", "new_password": "\\ud800" * 8}),
        ("/auth/refresh", {"refresh_token": "\\ud800"}),
    ],
)
def test_a_lone_surrogate_in_any_auth_body_is_a_422(
    client: TestClient, path: str, body: dict[str, str]
) -> None:
    text = json.dumps(body).replace("\\\\u", "\\u")  # keep the escape for the server to decode
    assert_problem(_raw_json(client, "POST", path, text), 422, "validation-error")


def _body_models(app_routes: list[Any]) -> set[type[BaseModel]]:
    """Every request-body model of the app, nested models included."""
    found: set[type[BaseModel]] = {LoginRequest, LoginForm}  # the login body is read by hand
    for route in app_routes:
        if isinstance(route, APIRoute):
            for param in route.dependant.body_params:
                found |= _models_in(param.field_info.annotation)
    return found


def _models_in(annotation: Any) -> set[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        nested = {annotation}
        for field in annotation.model_fields.values():
            nested |= _models_in(field.annotation)
        return nested
    return {model for arg in get_args(annotation) for model in _models_in(arg)}


def test_every_field_of_every_request_body_refuses_a_lone_surrogate(
    container: Container,
) -> None:
    app = create_app(container)
    let_through: list[str] = []
    for model in _body_models(list(app.routes)):
        for name, field in model.model_fields.items():
            key = field.alias or name
            try:
                model.model_validate({key: "\ud800"})
            except ValidationError as error:
                if any(e["loc"][:1] == (key,) for e in error.errors()):
                    continue
            let_through.append(f"{model.__name__}.{name}")
    assert let_through == []

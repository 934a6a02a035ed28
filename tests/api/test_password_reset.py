"""Password reset through the mail outbox, end to end."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner

from adapters.write_tables import password_reset_tokens
from bookstore.bootstrap import Container
from bookstore.cli import app as cli_app
from bookstore.settings import get_settings
from tests.api.conftest import PASSWORD, assert_problem, login, new_account, unique_email

NEW_PASSWORD = "a whole new password"


def reset_token_for(container: Container, email: str) -> str:
    """The token of the newest reset mail to `email`, as its reader would copy it."""
    mails = container.auth.outbox.messages(recipient=email)
    assert mails, f"no mail to {email}"
    match = re.search(r"^\s{4}(\S{40,})$", mails[-1].body, re.MULTILINE)
    assert match, mails[-1].body
    return match.group(1)


def test_a_reset_request_is_accepted_whether_or_not_the_email_exists(
    client: TestClient, container: Container
) -> None:
    account = new_account(client, container)
    known = client.post("/auth/password-reset", json={"email": account.email})
    unknown = client.post("/auth/password-reset", json={"email": unique_email()})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert len(container.auth.outbox.messages(recipient=account.email)) == 1
    assert len(container.auth.outbox.messages()) == 1


def test_a_reset_request_with_a_bad_email_is_a_422(client: TestClient) -> None:
    assert_problem(
        client.post("/auth/password-reset", json={"email": "nope"}), 422, "validation-error"
    )


def test_confirming_sets_the_password_burns_the_token_and_ends_every_session(
    client: TestClient, container: Container
) -> None:
    account = new_account(client, container)
    client.post("/auth/password-reset", json={"email": account.email})
    token = reset_token_for(container, account.email)

    response = client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 204
    assert int(response.headers["x-event-position"]) > 0

    assert client.get("/users/me", headers=account.headers).status_code == 401
    refresh = client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refresh.status_code == 401
    old = client.post("/auth/login", json={"email": account.email, "password": PASSWORD})
    assert old.status_code == 401
    login(client, account.email, NEW_PASSWORD)

    again = client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": "yet another one"}
    )
    assert_problem(again, 400, "invalid-reset-token")


def test_an_unknown_reset_token_is_a_400(client: TestClient) -> None:
    response = client.post(
        "/auth/password-reset/confirm", json={"token": "x" * 43, "new_password": NEW_PASSWORD}
    )
    assert_problem(response, 400, "invalid-reset-token")


def test_an_expired_reset_token_is_a_400(client: TestClient, container: Container) -> None:
    account = new_account(client, container)
    client.post("/auth/password-reset", json={"email": account.email})
    token = reset_token_for(container, account.email)
    with container.write_engine.begin() as connection:
        connection.execute(
            update(password_reset_tokens).values(
                expires_at=datetime.now(UTC) - timedelta(seconds=1)
            )
        )
    response = client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert_problem(response, 400, "invalid-reset-token")
    login(client, account.email)  # the old password still works


def test_a_reset_token_lasts_thirty_minutes(client: TestClient, container: Container) -> None:
    account = new_account(client, container)
    client.post("/auth/password-reset", json={"email": account.email})
    with container.write_engine.connect() as connection:
        row = connection.execute(password_reset_tokens.select()).one()
    lifetime = row.expires_at - row.created_at
    assert lifetime == timedelta(minutes=30)


@pytest.mark.parametrize(
    "body",
    [{"token": "abc"}, {"new_password": NEW_PASSWORD}, {"token": "abc", "new_password": "short"}],
)
def test_a_bad_confirm_body_is_a_422(client: TestClient, body: dict[str, str]) -> None:
    assert_problem(client.post("/auth/password-reset/confirm", json=body), 422, "validation-error")


def test_the_embedded_worker_sends_the_mail(client: TestClient, container: Container) -> None:
    account = new_account(client, container)
    client.post("/auth/password-reset", json={"email": account.email})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        mails = container.auth.outbox.messages(recipient=account.email)
        if mails and mails[0].sent_at is not None:
            break
        time.sleep(0.05)
    assert mails[0].sent_at is not None  # no SMTP configured: logged, then marked sent


def test_the_cli_prints_the_outbox_as_json_lines(
    client: TestClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = new_account(client, container)
    second = new_account(client, container)
    for account in (first, second):
        client.post("/auth/password-reset", json={"email": account.email})
    monkeypatch.setenv("BOOKSTORE_DATABASE_URL", container.settings.database_url)
    monkeypatch.setenv("BOOKSTORE_ENV", "development")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["mail", "outbox", "--to", second.email])
        everything = CliRunner().invoke(cli_app, ["mail", "outbox"])
        monkeypatch.setenv("BOOKSTORE_ENV", "production")
        monkeypatch.setenv("BOOKSTORE_SECRET_KEY", "p" * 40)
        get_settings.cache_clear()
        refused = CliRunner().invoke(cli_app, ["mail", "outbox"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["to"] for line in lines] == [second.email]
    assert reset_token_for(container, second.email) in lines[0]["body"]
    assert len(everything.output.splitlines()) == 2
    assert refused.exit_code == 1
    assert "production" in refused.output


def test_a_new_reset_token_supersedes_the_older_ones(
    client: TestClient, container: Container
) -> None:
    account = new_account(client, container)
    client.post("/auth/password-reset", json={"email": account.email})
    older = reset_token_for(container, account.email)
    client.post("/auth/password-reset", json={"email": account.email})
    newer = reset_token_for(container, account.email)

    stale = client.post(
        "/auth/password-reset/confirm", json={"token": older, "new_password": NEW_PASSWORD}
    )
    assert_problem(stale, 400, "invalid-reset-token")
    fresh = client.post(
        "/auth/password-reset/confirm", json={"token": newer, "new_password": NEW_PASSWORD}
    )
    assert fresh.status_code == 204

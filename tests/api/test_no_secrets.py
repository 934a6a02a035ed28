"""No password, hash or reset token in any response, log line or event: scanned after a
session that does everything secret-bearing (register, login, password change, reset)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import select

from adapters.write_tables import credentials
from api.app import create_app
from bookstore.bootstrap import Container
from bookstore.logging_setup import (
    HIDDEN_PARAMETERS,
    TEXT_FORMAT,
    CorrelationIdFilter,
    JsonFormatter,
    TextFormatter,
    logging_config,
)
from tests.api.test_password_reset import reset_token_for
from tests.conftest import make_settings

FIRST = "first-Pa55word-xyz"
SECOND = "second-Pa55word-xyz"
THIRD = "third-Pa55word-xyz"


class LineCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())
        self.addFilter(CorrelationIdFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    collector = LineCollector()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(collector)
    root.setLevel(logging.DEBUG)
    try:
        yield collector.lines
    finally:
        root.removeHandler(collector)
        root.setLevel(old_level)


def test_no_secret_leaves_through_responses_logs_or_events(
    container: Container, log_lines: list[str]
) -> None:
    seen: list[str] = []

    def keep(response: httpx.Response) -> None:
        response.read()
        seen.append(f"{response.headers}\n{response.text}")

    secrets: set[str] = {FIRST, SECOND, THIRD}
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        client.event_hooks["response"] = [keep]
        email = "secretive@example.com"
        client.post("/auth/register", json={"email": email, "password": FIRST})
        client.post("/auth/login", json={"email": email, "password": "wrong-" + FIRST})
        client.post("/auth/register", json={"email": email, "password": FIRST})  # 409
        client.post("/auth/register", json={"email": "bad", "password": FIRST})  # 422
        tokens = client.post("/auth/login", data={"username": email, "password": FIRST}).json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        client.put("/users/me", json={"new_password": SECOND}, headers=headers)  # 422
        client.put(
            "/users/me", json={"new_password": SECOND, "current_password": "no"}, headers=headers
        )  # 403
        client.put(
            "/users/me", json={"new_password": SECOND, "current_password": FIRST}, headers=headers
        )
        client.post("/auth/password-reset", json={"email": email})
        token = reset_token_for(container, email)
        secrets.add(token)
        client.post(
            "/auth/password-reset/confirm", json={"token": token, "new_password": THIRD[:3]}
        )  # 422
        client.post("/auth/password-reset/confirm", json={"token": token, "new_password": THIRD})
        client.post("/auth/password-reset/confirm", json={"token": token, "new_password": THIRD})
        client.post("/auth/login", json={"email": email, "password": THIRD})

        with container.write_engine.connect() as connection:
            hashes = set(connection.execute(select(credentials.c.password_hash)).scalars())
        assert hashes
        secrets |= hashes
        # The parts of an argon2 hash that are secret-ish on their own: salt and digest.
        secrets |= {part for h in hashes for part in h.split("$")[-2:]}

        app = container.write_app
        events = [
            repr(app.mapper.to_domain_event(item).__dict__)
            + item.state.decode("utf-8", errors="replace")
            for item in app.recorder.select_notifications(start=1, limit=10_000)
        ]

    assert len(seen) == 13
    # The scan reads real content: the email is in all three.
    for texts in (seen, log_lines, events):
        assert any(email in text for text in texts)
    assert log_lines
    assert events
    for where, texts in (("response", seen), ("log line", log_lines), ("event", events)):
        for text in texts:
            for secret in secrets:
                assert secret not in text, f"a secret is in a {where}: {text[:300]}"


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_logged_database_error_keeps_the_sql_but_hides_the_values(log_format: str) -> None:
    """A failed statement's exception text holds its bound values (a hash, a token digest):
    a 500's traceback in the log must not."""
    config = logging_config(make_settings("sqlite://", log_format=log_format))
    factory = config["formatters"]["default"]["()"]
    formatter: logging.Formatter = (
        JsonFormatter() if log_format == "json" else TextFormatter(TEXT_FORMAT)
    )
    assert factory == f"bookstore.logging_setup.{type(formatter).__name__}"

    secret_hash = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$secret-digest"
    engine = sa.create_engine("sqlite://")
    insert = sa.text("INSERT INTO hashes VALUES (:value)")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE hashes (value TEXT PRIMARY KEY)"))
        connection.execute(insert, {"value": secret_hash})
    handler = LineCollector()
    handler.setFormatter(formatter)
    log = logging.getLogger("test.redaction")
    log.addHandler(handler)
    try:
        with engine.begin() as connection:
            connection.execute(insert, {"value": secret_hash})
    except sa.exc.IntegrityError as error:
        log.exception("unhandled error")
        log.error("failed: %s", error)
    finally:
        log.removeHandler(handler)
    text = "\n".join(handler.lines)
    assert len(handler.lines) == 2
    assert "INSERT INTO hashes" in text
    assert HIDDEN_PARAMETERS in text
    assert "secret-digest" not in text

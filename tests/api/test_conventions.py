"""Conventions and errors of the contract: request ids, problem details, event metadata."""

from __future__ import annotations

import logging
import re
import uuid

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from bookstore.bootstrap import Container
from bookstore.logging_setup import CorrelationIdFilter, JsonFormatter
from tests.api.conftest import PASSWORD, assert_problem, new_account, unique_email
from write_model import errors
from write_model.application import event_metadata


def test_a_sane_client_request_id_is_kept(client: TestClient) -> None:
    for sane in ["abc", "A.b-c_9", "x" * 128]:
        response = client.get("/health", headers={"X-Request-ID": sane})
        assert response.headers["x-request-id"] == sane


@pytest.mark.parametrize("insane", [b"x" * 129, b"has space", b"semi;colon", "ünï".encode(), b""])
def test_an_insane_client_request_id_is_replaced(client: TestClient, insane: bytes) -> None:
    response = client.get("/health", headers={"X-Request-ID": insane})  # type: ignore[dict-item]
    fresh = response.headers["x-request-id"]
    assert fresh.encode() != insane
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,128}", fresh)


def test_every_response_gets_a_fresh_request_id_when_none_is_sent(client: TestClient) -> None:
    first = client.get("/health").headers["x-request-id"]
    second = client.get("/health").headers["x-request-id"]
    assert first != second


def test_an_unknown_route_is_a_404_problem(client: TestClient) -> None:
    response = client.get("/no/such/thing", headers={"X-Request-ID": "req-404"})
    body = assert_problem(response, 404, "not-found")
    assert body["instance"] == "/no/such/thing"
    assert body["correlation_id"] == "req-404"


def test_a_wrong_method_is_a_405_problem_with_every_allowed_method(client: TestClient) -> None:
    response = client.delete("/users/me")
    assert_problem(response, 405, "method-not-allowed")
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert allowed == {"GET", "HEAD", "OPTIONS", "PUT"}


def test_a_body_that_is_not_json_is_a_400_problem(client: TestClient) -> None:
    response = client.post(
        "/auth/register", content=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, "malformed-json")


def test_a_validation_failure_is_a_422_problem_listing_each_error(client: TestClient) -> None:
    response = client.post("/auth/register", json={"email": "not-an-email", "password": "s3cr3t!"})
    body = assert_problem(response, 422, "validation-error")
    errors = body["errors"]
    assert isinstance(errors, list)
    locations = {tuple(error["loc"]) for error in errors}
    assert locations == {("body", "email"), ("body", "password")}
    for error in errors:
        assert set(error) == {"loc", "msg", "type"}
    assert "s3cr3t!" not in response.text  # the rejected input is never echoed


def test_a_path_id_that_is_not_a_uuid_is_a_422_problem(
    client: TestClient, container: Container
) -> None:
    admin = new_account(client, container, "admin")
    response = client.put("/users/not-a-uuid/role", json={"role": "staff"}, headers=admin.headers)
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["loc"] == ["path", "user_id"]  # type: ignore[index]


def test_an_unexpected_error_is_a_500_problem_without_a_trace_and_is_logged(
    container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(container)

    @app.get("/explode")
    def explode() -> None:
        raise RuntimeError("SELECT secret FROM credentials -- boom")

    caplog.handler.addFilter(CorrelationIdFilter())
    with (
        TestClient(app, raise_server_exceptions=False) as client,
        caplog.at_level(logging.ERROR),
    ):
        response = client.get("/explode", headers={"X-Request-ID": "req-500"})
    body = assert_problem(response, 500, "internal-error")
    assert "SELECT" not in response.text
    assert "RuntimeError" not in response.text
    assert body["correlation_id"] == "req-500"
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert logged, "the 500 was not logged"
    assert logged[0].exc_info is not None
    line = JsonFormatter().format(logged[0])
    assert '"correlation_id": "req-500"' in line
    assert "RuntimeError: SELECT secret" in line  # the trace is in the log, not the answer


def test_log_lines_written_while_serving_carry_the_request_id(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(CorrelationIdFilter())
    with caplog.at_level(logging.INFO):
        client.get("/health", headers={"X-Request-ID": "req-logged"})
    request_lines = [r for r in caplog.records if r.name == "bookstore.http"]
    assert request_lines
    formatted = JsonFormatter().format(request_lines[-1])
    assert '"correlation_id": "req-logged"' in formatted
    assert '"status": 200' in formatted


def test_events_carry_the_request_id_and_the_acting_user(
    client: TestClient, container: Container
) -> None:
    email = unique_email()
    response = client.post(
        "/auth/register",
        json={"email": email, "password": PASSWORD},
        headers={"X-Request-ID": "req-register"},
    )
    assert response.status_code == 201
    user_id = response.json()["id"]
    token = client.post("/auth/login", json={"email": email, "password": PASSWORD}).json()
    response = client.put(
        "/users/me",
        json={"full_name": "New Name"},
        headers={"Authorization": f"Bearer {token['access_token']}", "X-Request-ID": "req-rename"},
    )
    assert response.status_code == 200
    app = container.write_app
    recorded = [
        app.mapper.to_domain_event(item)
        for item in app.recorder.select_notifications(start=1, limit=1000)
    ]
    registered = [e for e in recorded if type(e).__qualname__ == "User.Registered"]
    renamed = [e for e in recorded if type(e).__qualname__ == "User.FullNameChanged"]
    assert event_metadata(registered[0]) == {"correlation_id": "req-register", "actor_id": None}
    assert event_metadata(renamed[0]) == {"correlation_id": "req-rename", "actor_id": user_id}
    assert int(response.headers["x-event-position"]) == max(
        item.id for item in app.recorder.select_notifications(start=1, limit=1000)
    )


DOMAIN_ERRORS = [
    (errors.NotFoundError("Book 1 not found"), 404, "not-found"),
    (errors.DuplicateKeyError("isbn '978' is already taken"), 409, "already-exists"),
    (
        errors.InsufficientStockError(
            [errors.StockShortfall(uuid.UUID(int=1), "Dune", requested=3, available=2)]
        ),
        409,
        "insufficient-stock",
    ),
    (errors.InvalidTransitionError("paid -> pending"), 409, "invalid-transition"),
    (errors.ConcurrencyError("Too many concurrent changes"), 409, "version-conflict"),
    (errors.EmptyCartError("The cart is empty"), 409, "cart-empty"),
    (errors.ConflictError("User is deactivated"), 409, "conflict"),
    (errors.PreconditionFailedError("Book is at version 3, not 2"), 412, "precondition-failed"),
    (
        errors.InvalidValueError("price", "has more than two decimal places"),
        422,
        "validation-error",
    ),
]


@pytest.mark.parametrize(("error", "status", "kind"), DOMAIN_ERRORS, ids=lambda v: str(v)[:20])
def test_domain_errors_are_problems_of_their_kind(
    container: Container, error: Exception, status: int, kind: str
) -> None:
    app = create_app(container)

    @app.post("/raise")
    def raise_it() -> None:
        raise error

    with TestClient(app) as client:
        response = client.post("/raise")
    body = assert_problem(response, status, kind)
    assert body["detail"] == str(error)
    if kind == "insufficient-stock":
        assert body["lines"] == [
            {"book_id": str(uuid.UUID(int=1)), "title": "Dune", "requested": 3, "available": 2}
        ]
    if kind == "validation-error":
        assert body["errors"] == [
            {
                "loc": ["body", "price"],
                "msg": "has more than two decimal places",
                "type": "value_error",
            }
        ]

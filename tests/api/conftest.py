"""API test fixtures: a TestClient around a real container, and small user builders."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from bookstore.bootstrap import Container
from write_model.context import CommandContext
from write_model.values import Role

PASSWORD = "correct horse battery"
_counter = itertools.count()


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}.{next(_counter)}.{uuid.uuid4().hex[:6]}@example.com"


@dataclass
class Account:
    """A registered user as a test sees them: how to log in, and a fresh access token."""

    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:
    """The app over the container, lifespan running (so background work starts)."""
    with TestClient(create_app(container), raise_server_exceptions=False) as test_client:
        yield test_client


def register(client: TestClient, email: str | None = None, password: str = PASSWORD) -> str:
    email = email or unique_email()
    response = client.post(
        "/auth/register", json={"email": email, "password": password, "full_name": "Test User"}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def login(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return dict(response.json())


def new_account(client: TestClient, container: Container, role: str = "customer") -> Account:
    """Register through the API; staff and admins are then promoted by the write model."""
    email = unique_email(role)
    user_id = register(client, email)
    if role == "admin":
        container.write_app.ensure_admin(
            CommandContext.system("test"), email=email, password_hash="unused"
        )
    elif role == "staff":
        container.write_app.change_role(
            CommandContext.system("test"), uuid.UUID(user_id), Role.STAFF
        )
    tokens = login(client, email)
    return Account(user_id, email, PASSWORD, tokens["access_token"], tokens["refresh_token"])


def assert_problem(response: object, status: int, kind: str) -> dict[str, object]:
    """The response is an RFC 9457 problem of this kind, naming the request's id."""
    from httpx import Response

    assert isinstance(response, Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == f"https://bookstore.example/problems/{kind}"
    assert body["status"] == status
    assert body["title"]
    assert body["correlation_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return dict(body)

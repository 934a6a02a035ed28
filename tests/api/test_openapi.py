"""The OpenAPI document: what the interactive docs and client generators rely on."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import PASSWORD, register, unique_email


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_the_password_flow_is_declared_so_the_authorize_button_logs_in(
    document: dict[str, Any],
) -> None:
    schemes = document["components"]["securitySchemes"]
    (scheme,) = schemes.values()
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["password"]["tokenUrl"] == "/auth/login"


def test_login_declares_a_json_body_and_leaves_the_form_to_the_password_flow(
    document: dict[str, Any],
) -> None:
    login = document["paths"]["/auth/login"]["post"]
    content = login["requestBody"]["content"]
    assert set(content) == {"application/json"}
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/LoginRequest"}
    body = document["components"]["schemas"]["LoginRequest"]
    assert set(body["required"]) == {"email", "password"}
    assert "application/x-www-form-urlencoded" in login["description"]


def test_the_login_form_still_logs_in_as_the_authorize_button_sends_it(
    client: TestClient,
) -> None:
    email = unique_email()
    register(client, email)
    response = client.post("/auth/login", data={"username": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "bearer"


def test_every_success_is_documented_with_its_model(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        successes = {code: r for code, r in operation["responses"].items() if code[0] == "2"}
        assert successes, f"{method} {path} documents no success"
        for code, response in successes.items():
            if code == "204":
                assert "content" not in response
                continue
            # /metrics answers the Prometheus text format, as the contract has it.
            media_type = "text/plain" if path == "/metrics" else "application/json"
            schema = response["content"][media_type]["schema"]
            assert schema, f"{method} {path} {code} has no schema"


def test_every_error_is_documented_as_a_problem(document: dict[str, Any]) -> None:
    """`Problem`, or a route's own problem with more members (the import's row errors)."""
    components = document["components"]["schemas"]
    for method, path, operation in operations(document):
        if path in ("/health",):
            continue
        errors = {code: r for code, r in operation["responses"].items() if code[0] in "45"}
        assert errors, f"{method} {path} documents no error"
        for code, response in errors.items():
            assert set(response["content"]) == {"application/problem+json"}, (method, path, code)
            schema = response["content"]["application/problem+json"]["schema"]
            name = schema["$ref"].removeprefix("#/components/schemas/")
            assert name.endswith("Problem"), (method, path, code, name)
            required = set(components[name]["required"])
            assert {"type", "title", "status", "correlation_id"} <= required, (method, path, code)
        if operation.get("security"):
            assert "401" in errors, f"{method} {path} does not document 401"


def test_the_docs_page_is_served(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()
    assert "/openapi.json" in response.text


def test_the_document_validates_as_openapi_3_1(document: dict[str, Any]) -> None:
    from openapi_spec_validator import validate

    validate(document)  # raises, naming the offending part, when invalid


def test_operation_ids_are_short_stable_and_unique(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
    for operation_id in ids:
        assert re.fullmatch(r"[a-z]+(-[a-z]+)+", operation_id), operation_id
        assert len(operation_id) <= 40, operation_id
    assert {
        "auth-login",
        "auth-register",
        "users-read-me",
        "users-list",
        "books-list",
        "books-read",
        "books-create",
        "books-update",
        "books-delete",
        "books-history",
        "books-import",
        "cart-read",
        "cart-add-item",
        "cart-set-quantity",
        "cart-remove-item",
        "cart-clear",
        "orders-list",
        "orders-read",
        "orders-place",
        "orders-cancel",
        "orders-change-status",
    } <= set(ids)


def test_every_response_header_has_a_schema(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            for name, header in response.get("headers", {}).items():
                assert "schema" in header, (method, path, status, name)


def test_no_parameter_is_declared_nullable(document: dict[str, Any]) -> None:
    """A parameter is absent or a string on the wire; `required: false` says it may be absent."""
    for method, path, operation in operations(document):
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            branches = schema.get("anyOf", [])
            assert {"type": "null"} not in branches, (method, path, parameter["name"])
            assert schema.get("type") != "null", (method, path, parameter["name"])

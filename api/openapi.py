"""The OpenAPI document, shaped for client generators as well as for the interactive docs.

Errors are declared as `application/problem+json`, as they are sent; every response header
has a schema (OpenAPI 3.1 requires one); operation ids are short and stable
(`books-list`, `auth-login`), so generated clients get readable method names that do not
change when a path or a Python function is renamed.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from api.problems import PROBLEM_MEDIA_TYPE


def _problems_as_problem_json(schema: dict[str, Any]) -> None:
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            for code, response in operation.get("responses", {}).items():
                content = response.get("content")
                if str(code)[0] in "45" and content and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")


# The schema of each header the API answers; any other header is a string.
HEADER_SCHEMAS: dict[str, dict[str, Any]] = {
    "X-Event-Position": {"type": "integer", "minimum": 0},
    "X-Projection-Position": {"type": "integer", "minimum": 0},
    "Retry-After": {"type": "integer", "minimum": 0},
    "Location": {"type": "string", "format": "uri-reference"},
    "ETag": {"type": "string"},
}


def operation_id(route: APIRoute) -> str:
    """`<tag>-<action>`: the route's `name=` when it is already that (`books-list`), else
    the tag and the function name (`auth-register`)."""
    if "-" in route.name:
        return route.name
    tag = str(route.tags[0]) if route.tags else "default"
    action = route.name.replace("_", "-")
    return action if action.startswith(f"{tag}-") else f"{tag}-{action}"


def _headers_with_schemas(schema: dict[str, Any]) -> None:
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            for response in operation.get("responses", {}).values():
                for name, header in response.get("headers", {}).items():
                    header.setdefault("schema", HEADER_SCHEMAS.get(name, {"type": "string"}))


def install_openapi(app: FastAPI) -> None:
    """Replace `app.openapi` by one that post-processes FastAPI's document once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            _problems_as_problem_json(schema)
            _headers_with_schemas(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

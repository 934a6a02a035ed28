"""The OpenAPI document: errors declared as `application/problem+json`, as they are sent."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.problems import PROBLEM_MEDIA_TYPE


def _problems_as_problem_json(schema: dict[str, Any]) -> None:
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            for code, response in operation.get("responses", {}).items():
                content = response.get("content")
                if str(code)[0] in "45" and content and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")


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
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

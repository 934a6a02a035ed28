"""The OpenAPI document, shaped for client generators as well as for the interactive docs.

Errors are declared as `application/problem+json`, as they are sent; every response header
has a schema (OpenAPI 3.1 requires one); operation ids are short and stable
(`books-list`, `auth-login`), so generated clients get readable method names that do not
change when a path or a Python function is renamed. The login body is declared as JSON
only: the OAuth2 form it also takes is declared by the password flow (see
`_token_url_bodies_as_json`), which is all the docs' Authorize button reads.
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


def _parameters_never_null(schema: dict[str, Any]) -> None:
    """A query, header or path parameter is a string on the wire: absent, never JSON null.

    FastAPI declares an optional parameter (`str | None = None`) as `anyOf [X, null]`;
    generators then type it `None | X | Unset`, and fuzzers send the text `null`. Being
    optional is what `required: false` says, so the schema keeps X alone.
    """
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                declared = parameter.get("schema", {})
                branches = declared.get("anyOf", [])
                kept = [branch for branch in branches if branch != {"type": "null"}]
                if len(kept) == 1 and len(branches) == 2:
                    del declared["anyOf"]
                    declared.update(kept[0])
                    if declared.get("default", ...) is None:
                        del declared["default"]


FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
LOGIN_FORM_NOTE = (
    "The body is JSON. As the OAuth2 password flow's token URL, this path also takes the "
    "form `username` (your email), `password` (`application/x-www-form-urlencoded`), which "
    "is what the docs' **Authorize** button posts."
)


def _token_urls(schema: dict[str, Any]) -> set[str]:
    schemes = schema.get("components", {}).get("securitySchemes", {}).values()
    return {
        str(flow["tokenUrl"])
        for scheme in schemes
        if scheme.get("type") == "oauth2"
        for flow in scheme.get("flows", {}).values()
        if "tokenUrl" in flow
    }


def _body_schema_as_component(schema: dict[str, Any], media: dict[str, Any]) -> None:
    """An inline body schema (one given by `openapi_extra`) becomes a named component, so
    generated clients call its model by its title (`LoginRequest`), not a made-up name."""
    body = media.get("schema", {})
    title = body.get("title")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if "$ref" in body or not title or components.get(title, body) != body:
        return
    components[title] = body
    media["schema"] = {"$ref": f"#/components/schemas/{title}"}


def _token_url_bodies_as_json(schema: dict[str, Any]) -> None:
    """Declare a token URL's body as JSON only; the form is the password flow's to declare.

    A body offered both as JSON and as a form is one client generators mishandle:
    openapi-python-client 0.29 writes a login module that cannot be imported (`Unset`
    used, not imported: its issue #1451), and others make the body a union that callers
    must pick from. The form is already declared by the OAuth2 password flow, whose token
    URL takes it by definition (RFC 6749, 4.3); the operation's description says so.
    """
    paths = schema.get("paths", {})
    for url in _token_urls(schema):
        operation = paths.get(url, {}).get("post")
        content = (operation or {}).get("requestBody", {}).get("content", {})
        if operation is None or "application/json" not in content:
            continue
        for media_type in FORM_MEDIA_TYPES:
            content.pop(media_type, None)
        _body_schema_as_component(schema, content["application/json"])
        description = operation.get("description")
        operation["description"] = (
            f"{description}\n\n{LOGIN_FORM_NOTE}" if description else LOGIN_FORM_NOTE
        )


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
            _token_url_bodies_as_json(schema)
            _parameters_never_null(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

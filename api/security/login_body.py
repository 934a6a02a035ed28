"""The login body: JSON `{"email", "password"}` or the OAuth2 password form.

The form is what the interactive docs' Authorize button posts; every other client sends
JSON. Both arrive as one `LoginRequest`, validated with the same problems (400 malformed
JSON, 415 another media type, 422 an invalid field) as any JSON body of this API.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.problems import ProblemError
from api.schemas.auth import LoginForm, LoginRequest

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

# FastAPI cannot describe a body read by hand: the OpenAPI schema names both media types.
LOGIN_OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LoginRequest.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": LoginForm.model_json_schema()},
        },
    }
}


def _validation_error(error: ValidationError) -> RequestValidationError:
    return RequestValidationError(
        [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_input=False)]
    )


async def login_credentials(request: Request) -> LoginRequest:
    """Credentials from a JSON body or from the OAuth2 password form, whichever was sent."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in FORM_TYPES:
        form = await request.form()
        try:
            fields = LoginForm.model_validate(
                {key: value for key, value in form.items() if isinstance(value, str)}
            )
        except ValidationError as error:
            raise _validation_error(error) from None
        return LoginRequest(email=fields.username, password=fields.password)
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise ProblemError(
            "unsupported-media-type",
            "Send application/json or application/x-www-form-urlencoded",
        )
    try:
        data: Any = json.loads(await request.body())
    except (ValueError, RecursionError):
        # RecursionError: nested too deeply to parse (e.g. 100,000 "[").
        raise ProblemError("malformed-json", "The body is not valid JSON") from None
    try:
        return LoginRequest.model_validate(data)
    except ValidationError as error:
        raise _validation_error(error) from None


LoginCredentials = Annotated[LoginRequest, Depends(login_credentials)]

"""RFC 9457 problem details: one JSON shape, one stable `type` URI per kind of problem.

Every error the API answers goes through `problem_response`, whatever raised it: our own
`ProblemError`, a domain error of the write model, FastAPI's validation, Starlette's
404/405, or an unexpected exception (500, answered by the request-id middleware). Clients
branch on `type`; `detail` is for people; `correlation_id` finds the log lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from write_model import errors as domain

PROBLEM_BASE = "https://bookstore.example/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
# FastAPI's detail when a JSON body cannot be decoded at all (not UTF-8, nested too deep).
BODY_PARSE_FAILURE = "There was an error parsing the body"


@dataclass(frozen=True)
class Kind:
    """A kind of problem: its slug (the end of its `type` URI), status and title."""

    slug: str
    status: int
    title: str

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.slug


_KINDS = [
    Kind("bad-request", 400, "Bad request"),
    Kind("malformed-json", 400, "Malformed JSON body"),
    Kind("invalid-reset-token", 400, "Invalid or expired reset token"),
    Kind("authentication-required", 401, "Authentication required"),
    Kind("invalid-token", 401, "Invalid or expired token"),
    Kind("invalid-credentials", 401, "Invalid email or password"),
    Kind("invalid-refresh-token", 401, "Invalid refresh token"),
    Kind("forbidden", 403, "Forbidden"),
    Kind("wrong-current-password", 403, "Current password is wrong"),
    Kind("not-found", 404, "Not found"),
    Kind("method-not-allowed", 405, "Method not allowed"),
    Kind("not-acceptable", 406, "Not acceptable"),
    Kind("conflict", 409, "Conflict"),
    Kind("already-exists", 409, "Already exists"),
    Kind("email-taken", 409, "Email already registered"),
    Kind("isbn-taken", 409, "ISBN already in the catalogue"),
    Kind("last-admin", 409, "Would leave no admin"),
    Kind("insufficient-stock", 409, "Insufficient stock"),
    Kind("invalid-transition", 409, "Invalid state transition"),
    Kind("version-conflict", 409, "Too many concurrent changes"),
    Kind("cart-empty", 409, "The cart is empty"),
    Kind("book-unavailable", 409, "Book unavailable"),
    Kind("precondition-failed", 412, "Precondition failed"),
    Kind("payload-too-large", 413, "Payload too large"),
    Kind("unsupported-media-type", 415, "Unsupported media type"),
    Kind("validation-error", 422, "Validation failed"),
    Kind("too-many-requests", 429, "Too many requests"),
    Kind("login-throttled", 429, "Too many failed logins"),
    Kind("internal-error", 500, "Internal server error"),
    Kind("service-unavailable", 503, "Service unavailable"),
    Kind("not-ready", 503, "Not ready"),
    Kind("projection-lagging", 503, "Projection lagging"),
]
KINDS: dict[str, Kind] = {kind.slug: kind for kind in _KINDS}

# The generic kind of a bare HTTP status (Starlette's 404/405, a plain HTTPException).
_BY_STATUS: dict[int, Kind] = {}
for _kind in _KINDS:
    _BY_STATUS.setdefault(_kind.status, _kind)
_BY_STATUS[401] = KINDS["authentication-required"]

# Domain errors, most specific first: the first class in an error's MRO found here wins.
DOMAIN_KINDS: dict[type[Exception], str] = {
    domain.NotFoundError: "not-found",
    domain.DuplicateKeyError: "already-exists",
    domain.InsufficientStockError: "insufficient-stock",
    domain.InvalidTransitionError: "invalid-transition",
    domain.ConcurrencyError: "version-conflict",
    domain.EmptyCartError: "cart-empty",
    domain.LastAdminError: "last-admin",
    domain.BookUnavailableError: "book-unavailable",
    domain.ConflictError: "conflict",
    domain.PermissionDeniedError: "forbidden",
    domain.PreconditionFailedError: "precondition-failed",
    domain.InvalidValueError: "validation-error",
}


class ValidationIssue(BaseModel):
    """One invalid input: where it is (`loc`), what is wrong (`msg`), its code (`type`)."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every 4xx and 5xx of this API answers them."""

    type: str = Field(examples=[PROBLEM_BASE + "not-found"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="The request path.")
    correlation_id: str = Field(description="The request's X-Request-ID, also in every log line.")
    errors: list[ValidationIssue] | None = Field(
        default=None, description="On 422: every invalid input."
    )


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


class ProblemError(Exception):
    """Raise to answer a problem of a known kind; extra members go into the body."""

    def __init__(
        self,
        kind: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[Mapping[str, Any]] | None = None,
        **extra: Any,
    ) -> None:
        if kind not in KINDS:
            msg = f"unknown problem kind {kind!r}"
            raise ValueError(msg)
        super().__init__(detail or KINDS[kind].title)
        self.kind = KINDS[kind]
        self.detail = detail
        self.headers = dict(headers or {})
        self.errors = list(errors) if errors is not None else None
        self.extra = extra


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", None) or "-")


def problem_response(
    request: Request,
    kind: Kind,
    detail: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": kind.type_uri,
        "title": kind.title,
        "status": kind.status,
        "detail": detail or kind.title,
        "instance": request.url.path,
        "correlation_id": request_id_of(request),
    }
    if errors is not None:
        body["errors"] = list(errors)
    body.update(extra or {})
    return ProblemResponse(body, status_code=kind.status, headers=dict(headers or {}))


def clean_validation_errors(raw: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`loc`, `msg` and `type` only: pydantic's `input` may hold a password."""
    return [
        {
            "loc": [part if isinstance(part, int) else str(part) for part in error["loc"]],
            "msg": str(error["msg"]),
            "type": str(error["type"]),
        }
        for error in raw
    ]


def _route_methods(request: Request, path: str) -> set[str]:
    """The methods of the routes serving `path`: those spelling it literally, if any.

    `/books/import` also fits `/books/{book_id}`, but is the import's resource: the books
    routes refuse `import` as an id with a 405 (see `api.routers.books`), so its `Allow`
    names the import's methods only.
    """
    literal: set[str] = set()
    templated: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.fullmatch(path):
            spelt = literal if not getattr(route, "param_convertors", None) else templated
            spelt.update(route.methods or ())
    return literal or templated


def allowed_methods(request: Request) -> str:
    """Every method any route of this path answers: Starlette names only the first route's.

    `HEAD` wherever `GET` is (the request-id middleware answers it), and `OPTIONS`.
    """
    methods = _route_methods(request, request.url.path)
    if not methods:
        return ""
    if "GET" in methods:
        methods.add("HEAD")
    methods.add("OPTIONS")
    return ", ".join(sorted(methods))


async def _on_problem(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request,
        exc.kind,
        exc.detail,
        headers=exc.headers,
        errors=exc.errors,
        extra=exc.extra,
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    phrase = _phrase(status)
    kind = _BY_STATUS.get(status) or Kind(f"http-{status}", status, phrase)
    headers = dict(exc.headers or {})
    detail = exc.detail if exc.detail and exc.detail != phrase else None
    if status == 400 and detail == BODY_PARSE_FAILURE:
        # FastAPI's answer to a JSON body it could not decode: not UTF-8, or nested
        # too deeply to parse. For the client it is one thing: not the JSON we take.
        kind = KINDS["malformed-json"]
        detail = "The body is not valid JSON (UTF-8 encoded)"
    if status == 404 and detail is None:
        detail = f"No resource at {request.url.path}"
        path = request.url.path
        if path != "/" and path.endswith("/") and _route_methods(request, path.rstrip("/")):
            detail += f"; did you mean {path.rstrip('/')} (without the trailing slash)?"
    if status == 405:
        headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
        if request.method == "OPTIONS":
            # OPTIONS on a path that exists: which methods it takes, and nothing else.
            return Response(status_code=204, headers=headers)
        detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
    return problem_response(request, kind, detail, headers=headers)


async def _on_validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    raw = list(exc.errors())
    if any(error.get("type") == "json_invalid" for error in raw):
        return problem_response(request, KINDS["malformed-json"], "The body is not valid JSON")
    issues = clean_validation_errors(raw)
    summary = "; ".join(
        f"{'.'.join(str(p) for p in issue['loc'])}: {issue['msg']}" for issue in issues[:5]
    )
    return problem_response(request, KINDS["validation-error"], summary, errors=issues)


async def _on_domain_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, domain.DomainError)
    slug = next((DOMAIN_KINDS[cls] for cls in type(exc).__mro__ if cls in DOMAIN_KINDS), "conflict")
    extra: dict[str, Any] = {}
    errors = None
    if isinstance(exc, domain.InvalidValueError):
        errors = [{"loc": ["body", exc.field], "msg": exc.message, "type": "value_error"}]
    if isinstance(exc, domain.InsufficientStockError):
        extra["lines"] = [
            {
                "book_id": str(s.book_id),
                "title": s.title,
                "requested": s.requested,
                "available": s.available,
            }
            for s in exc.shortfalls
        ]
    return problem_response(request, KINDS[slug], str(exc), errors=errors, extra=extra)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of `app` as problem details (500s: see the middleware)."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(domain.DomainError, _on_domain_error)


def problem_responses(described: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the error statuses a route may answer.

    The media type becomes `application/problem+json` in `api.openapi`.
    """
    return {
        status: {"model": Problem, "description": description}
        for status, description in described.items()
    }

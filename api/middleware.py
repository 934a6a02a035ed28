"""X-Request-ID on every request and response, and the last word on unexpected errors.

A pure ASGI middleware (not `BaseHTTPMiddleware`, which would buffer streaming responses
and copy context variables badly). It sits outside the routes, so it also sees the
exceptions no handler took: those are logged once, with the traceback and the correlation
id, and answered as a plain 500 problem that holds no trace, SQL or secret.

It also guards the edges HTTP leaves to the server: a request body larger than the limit
of its path is refused with a 413 problem before it fills memory, and `HEAD` is answered
wherever `GET` is (as RFC 9110 asks), with the same headers and no body.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Mapping

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import KINDS, problem_response
from bookstore.logging_setup import correlation_id_var

log = logging.getLogger("bookstore.http")

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

# JSON bodies of this API are small; a route taking uploads gets its own, larger limit.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def sane_request_id(value: str | None) -> str | None:
    """The client's id if it is 1..128 characters of [A-Za-z0-9._-], else None."""
    if value is not None and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return None


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"The request body is larger than {limit} bytes")


class RequestIdMiddleware:
    """Give each request an id, put it in logs and the response, and catch what escapes.

    `body_limits` maps a path prefix to its body limit in bytes (the longest matching
    prefix wins); every other path gets `max_body_bytes`.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        body_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_limits = dict(body_limits or {})

    def body_limit(self, path: str) -> int:
        matches = [prefix for prefix in self.body_limits if path.startswith(prefix)]
        return self.body_limits[max(matches, key=len)] if matches else self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None
        )
        request_id = sane_request_id(incoming) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = correlation_id_var.set(request_id)
        method = scope["method"]
        is_head = method == "HEAD"
        if is_head:
            # Routed as the GET it mirrors; the body is dropped on the way out.
            scope = {**scope, "method": "GET"}
        status = 500
        started = False
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            elif message["type"] == "http.response.body" and is_head:
                message = {**message, "body": b""}
            await send(message)

        limit = self.body_limit(scope["path"])
        received = 0

        async def receive_with_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException: FastAPI lets it through its body parsing untouched,
                    # and the problem handlers answer it as a 413 problem.
                    raise _too_large(limit)
            return message

        try:
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                error = _too_large(limit)
                response = problem_response(
                    Request(scope), KINDS["payload-too-large"], str(error.detail)
                )
                await response(scope, receive, send_with_id)
            else:
                await self.app(scope, receive_with_limit, send_with_id)
        except Exception:
            log.exception("unhandled error on %s %s", method, scope["path"])
            if not started:
                response = problem_response(
                    Request(scope),
                    KINDS["internal-error"],
                    "An unexpected error occurred; quote the correlation id when reporting it",
                )
                await response(scope, receive, send_with_id)
        finally:
            log.info(
                "%s %s %s",
                method,
                scope["path"],
                status,
                extra={
                    "method": method,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - began) * 1000, 2),
                },
            )
            correlation_id_var.reset(token)


def _content_length(scope: Scope) -> int | None:
    """The declared Content-Length, or None when absent or unreadable (the server checks it)."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None

"""X-Request-ID on every request and response, and the last word on unexpected errors.

A pure ASGI middleware (not `BaseHTTPMiddleware`, which would buffer streaming responses
and copy context variables badly). It sits outside the routes, so it also sees the
exceptions no handler took: those are logged once, with the traceback and the correlation
id, and answered as a plain 500 problem that holds no trace, SQL or secret.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import KINDS, problem_response
from bookstore.logging_setup import correlation_id_var

log = logging.getLogger("bookstore.http")

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def sane_request_id(value: str | None) -> str | None:
    """The client's id if it is 1..128 characters of [A-Za-z0-9._-], else None."""
    if value is not None and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return None


class RequestIdMiddleware:
    """Give each request an id, put it in logs and the response, and catch what escapes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
        status = 500
        started = False
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
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
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - began) * 1000, 2),
                },
            )
            correlation_id_var.reset(token)

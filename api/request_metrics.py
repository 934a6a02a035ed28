"""Counting HTTP requests by route template, in a pure ASGI middleware.

The label is the route's template (`/books/{book_id}`), never the raw path: one series per
route, however many ids clients send. A path no route serves is labelled `<unmatched>`
and a method outside HTTP's usual ones `OTHER`, so no client can create series at will.

The middleware sits outside the request-id middleware, so it times and counts every answer,
the 413s and 500s that middleware gives included. It finds the template itself, by the
routes' own patterns, rather than from what routing leaves in the scope: the request-id
middleware routes a `HEAD` as a copy of the scope, which an outer middleware never sees.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import Metrics

UNMATCHED = "<unmatched>"
OTHER_METHOD = "OTHER"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class _Template:
    pattern: re.Pattern[str]
    methods: frozenset[str] | None
    path: str


class RouteTemplates:
    """Which route template serves a path, as Starlette's router would pick it.

    The first route whose pattern and method both match wins; failing that, the first whose
    pattern matches (the router answers that path 405, or 422 for a bad id); failing that,
    `<unmatched>`. The routes are read on first use, once the app has all of them.
    """

    def __init__(self, routes: Callable[[], Sequence[BaseRoute]]) -> None:
        self._routes = routes
        self._templates: list[_Template] | None = None

    def _compiled(self) -> list[_Template]:
        if self._templates is None:
            templates = []
            for route in iter_route_contexts(self._routes()):
                pattern = getattr(route, "path_regex", None)
                path = getattr(route, "path", None)
                if pattern is None or path is None:
                    continue
                methods = getattr(route, "methods", None)
                templates.append(
                    _Template(pattern, frozenset(methods) if methods else None, str(path))
                )
            self._templates = templates
        return self._templates

    def template(self, path: str, method: str) -> str:
        routed_as = "GET" if method == "HEAD" else method
        fallback = UNMATCHED
        for template in self._compiled():
            if template.pattern.match(path) is None:
                continue
            if template.methods is None or routed_as in template.methods:
                return template.path
            if fallback == UNMATCHED:
                fallback = template.path
        return fallback


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else OTHER_METHOD


class RequestMetricsMiddleware:
    """Time and count each HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, templates: RouteTemplates) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Nothing sent and an exception escaping means the server answers 500.
        status = 500
        began = time.perf_counter()

        async def send_seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_seen)
        finally:
            method = str(scope["method"])
            self.metrics.observe_request(
                method_label(method),
                self.templates.template(str(scope["path"]), method),
                status,
                time.perf_counter() - began,
            )

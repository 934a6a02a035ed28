"""JSON bodies whose numbers with a fraction are parsed as decimals, never as floats.

Money may arrive as a JSON number. Parsed as a float, `19.999999999999999999` becomes
`20.0` before any validator sees it, and "more than two places" can no longer be told
apart from a valid price. A router built with `route_class=ExactJsonRoute` hands its
body models `Decimal`s instead, so money validators see exactly what the client sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class ExactJsonRequest(Request):
    """A request whose `json()` keeps every number with a fraction as a `Decimal`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            self._json = json.loads(body, parse_float=Decimal)
        return self._json


class ExactJsonRoute(APIRoute):
    """An `APIRoute` whose endpoint reads the body through `ExactJsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(ExactJsonRequest(request.scope, request.receive))

        return exact

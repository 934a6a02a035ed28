"""JSON bodies whose numbers with a fraction are parsed as decimals, never as floats.

Money may arrive as a JSON number. Parsed as a float, `19.999999999999999999` becomes
`20.0` before any validator sees it, and "more than two places" can no longer be told
apart from a valid price. A router built with `route_class=ExactJsonRoute` hands its
body models `Decimal`s instead, so money validators see exactly what the client sent.

Only numbers inside an object or an array become decimals. FastAPI validates a body model
with `from_attributes`, so a bare top-level `Decimal` (a body of just `1e3`) would be read
as an object whose fields are all absent: an all-optional `BookUpdate` would accept it as
an empty change. A bare number stays the float the standard parser makes, which every
body model refuses (422), as it refuses a bare integer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class ExactJsonRequest(Request):
    """A request whose `json()` keeps every nested number with a fraction as a `Decimal`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            parsed = json.loads(body, parse_float=Decimal)
            self._json = float(parsed) if isinstance(parsed, Decimal) else parsed
        return self._json


class ExactJsonRoute(APIRoute):
    """An `APIRoute` whose endpoint reads the body through `ExactJsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(ExactJsonRequest(request.scope, request.receive))

        return exact

"""The FastAPI application factory: middleware, problem handlers, one router per resource."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.middleware import RequestIdMiddleware
from api.observability import install_observability
from api.openapi import install_openapi, operation_id
from api.problems import install_problem_handlers
from api.rebuild_metrics import rebuild_progress
from api.routers import auth, books, cart, events, health, operations, orders, projections, users
from api.routers.book_import import MAX_IMPORT_BYTES
from api.routers.book_import import router as book_import_router
from api.security.tokens import TokenCodec
from bookstore.bootstrap import Container

DESCRIPTION = """An event-sourced, CQRS bookstore.

Errors are RFC 9457 problem details (`application/problem+json`). Authenticate with
**Authorize**: your email as *username* and your password (the OAuth2 password flow on
`/auth/login`); the access token lasts 15 minutes, `/auth/refresh` renews it.

Request bodies are UTF-8 JSON (`Content-Type: application/json`; `/auth/login` also takes
the OAuth2 form): another media type is `415`, a body that does not parse is `400`
`malformed-json`, a body over 1 MiB is `413`. Names and searches take no control
characters. `HEAD` works wherever `GET` does, `OPTIONS` answers `204` with `Allow`, and a
path with a trailing slash is a `404` (no redirect). Send one `Authorization` header.
"""

TAGS = [
    {"name": "auth", "description": "Register, log in, refresh tokens, reset a password."},
    {"name": "users", "description": "Your account; users and roles for admins."},
    {
        "name": "books",
        "description": "The catalogue: browse, and staff add, change and remove books.",
    },
    {"name": "cart", "description": "Your cart: current prices and availability, always current."},
    {"name": "orders", "description": "Place orders from your cart, follow, cancel and ship them."},
    {
        "name": "operations",
        "description": "Liveness, readiness and Prometheus metrics of the service.",
    },
    {"name": "events", "description": "The event log, a page at a time, for analysts (admin)."},
    {"name": "projections", "description": "How each read model is doing (admin)."},
]


def create_app(container: Container) -> FastAPI:
    """Build the app around an already wired container; the app closes it on shutdown."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        container.start()
        try:
            yield
        finally:
            container.close()

    app = FastAPI(
        title="Bookstore API",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        swagger_ui_parameters={"persistAuthorization": False},
        # No 307 to the slash-less path: Starlette builds its Location from the Host
        # header (a spoofable absolute URL). `/users/me/` is a 404 problem naming the path.
        redirect_slashes=False,
        generate_unique_id_function=operation_id,
    )
    app.state.container = container
    app.state.token_codec = TokenCodec.from_settings(container.settings)
    app.add_middleware(RequestIdMiddleware, body_limits={"/books/import": MAX_IMPORT_BYTES})
    # Outside the request-id middleware, so its 413s and 500s are counted too.
    install_observability(app, container, rebuilds=rebuild_progress(container.projections))
    install_problem_handlers(app)
    app.include_router(auth.router)
    app.include_router(users.router)
    # Before any router with /books/{id} paths, so /books/import is never taken for an id.
    app.include_router(book_import_router)
    app.include_router(books.router)
    app.include_router(cart.router)
    app.include_router(orders.router)
    app.include_router(health.router)
    app.include_router(events.router)
    app.include_router(operations.router)
    app.include_router(projections.router)
    install_openapi(app)
    return app

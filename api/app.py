"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.routers import health
from bookstore.bootstrap import Container


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
        description="An event-sourced, CQRS bookstore. See the contract in the README.",
        lifespan=lifespan,
    )
    app.state.container = container
    app.include_router(health.router)
    return app

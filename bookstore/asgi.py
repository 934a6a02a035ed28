"""The ASGI entry point uvicorn imports in each worker process."""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app
from bookstore import bootstrap


def create() -> FastAPI:
    """One container (and connection pools) per server process."""
    return create_app(bootstrap.build())

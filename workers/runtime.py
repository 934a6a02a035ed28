"""One container per worker process, built on first use (after the prefork fork)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from bookstore import bootstrap
from bookstore.bootstrap import Container

_lock = threading.Lock()
_container: Container | None = None

# Swapped by tests that need a worker with extra (or deliberately slow) projections.
container_factory: Callable[[], Container] = bootstrap.build


def container() -> Container:
    """This process's container (event store pool, read engine, projection runner)."""
    global _container  # noqa: PLW0603 (one per process, by design)
    with _lock:
        if _container is None:
            _container = container_factory()
        return _container

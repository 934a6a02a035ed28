"""Where the server processes of one `bookstore serve` keep their metrics, so each scrape
sums all of them.

Uvicorn's workers are separate processes, and a scrape reaches one of them: with a
registry per process, successive scrapes would see different, partial counts.
prometheus-client's multiprocess mode has every process write its values to files in one
directory, which whichever process answers `/metrics` sums. The directory must be set in
the environment before the workers start (the library reads it when first imported) and
must start empty: files left by an earlier run would be counted again.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def clear_metrics_dir(path: Path) -> None:
    """Remove the value files of an earlier run (only those: the directory may be shared)."""
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)


@contextmanager
def multiprocess_metrics_dir(workers: int) -> Iterator[Path | None]:
    """Set up the metrics directory for a server run; yield it (None: one process, none needed).

    A `PROMETHEUS_MULTIPROC_DIR` already set (by a process manager, say) is used as it is,
    emptied of old value files first. Otherwise several workers get a fresh temporary
    directory, removed when the server stops; one worker needs none.
    """
    configured = os.environ.get(MULTIPROCESS_DIR_ENV)
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        clear_metrics_dir(path)
        yield path
        return
    if workers <= 1:
        yield None
        return
    path = Path(tempfile.mkdtemp(prefix="bookstore-metrics-"))
    os.environ[MULTIPROCESS_DIR_ENV] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROCESS_DIR_ENV, None)
        shutil.rmtree(path, ignore_errors=True)

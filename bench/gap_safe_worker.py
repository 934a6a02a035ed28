"""The Celery app the gap-safe benchmark's worker runs: the real one, in the chosen mode.

With `BOOKSTORE_BENCH_ID_ORDER=1` the worker's runner reads the log in store-position order
(`SerialLog`), as projections did while every insert took the table lock: the "before" of
`bench.gap_safe`. Otherwise it is the production worker. Only inside the worker process
(worker_init): importing this module elsewhere changes nothing.
"""

from __future__ import annotations

import os

from celery.signals import worker_init

from bookstore import bootstrap
from bookstore.bootstrap import Container
from projections.event_log import SerialLog
from workers import runtime
from workers.celery_app import app

ID_ORDER_ENV = "BOOKSTORE_BENCH_ID_ORDER"


def build_id_order_container() -> Container:
    container = bootstrap.build()
    container.projections.runner.log = SerialLog(container.write_app.recorder)
    return container


@worker_init.connect  # type: ignore[untyped-decorator]
def _choose_mode(**_: object) -> None:
    if os.environ.get(ID_ORDER_ENV) == "1":
        runtime.container_factory = build_id_order_container


__all__ = ["app"]

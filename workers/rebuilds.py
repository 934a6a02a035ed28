"""The rebuild tasks: thin; the work is `projections.rebuild.Rebuilds`.

A rebuild runs for minutes, so its task has no time limit. When the worker is told to shut
down, the rebuild stops at its next step and stays interrupted; `resume_rebuilds` (sent by
every worker as it starts) takes up each rebuild whose owner is gone. A worker killed
outright (`kill -9`) releases its ownership with its database connection, and the task's
message, acknowledged late, is handed to another worker, which resumes it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any

from celery import shared_task
from celery.signals import worker_shutting_down

from adapters.celery_wakeups import REBUILD_TASK, RESUME_REBUILDS_TASK
from projections.rebuild import NoRebuildError, Rebuilds
from read_model.rebuilds import RebuildRunningError
from workers import runtime

log = logging.getLogger(__name__)

# Processes folding the log of a large rebuild (the machine's cores, say).
WORKER_PROCESSES = 2
# Set when this worker is shutting down: a running rebuild stops at its next step.
shutting_down = threading.Event()


@worker_shutting_down.connect  # type: ignore[untyped-decorator]
def _stop_rebuilds(**_: Any) -> None:
    shutting_down.set()


def _rebuilds() -> Rebuilds:
    """This worker's rebuilds: the log folded by two processes on large logs, and no
    cyclic garbage collection during a batch (this process is the rebuild's own)."""
    projections = runtime.container().projections
    options = replace(projections.rebuilds.options, workers=WORKER_PROCESSES, pause_gc=True)
    return Rebuilds(projections.runner, options)


@shared_task(  # type: ignore[untyped-decorator]
    name=REBUILD_TASK, acks_late=True, ignore_result=True
)
def rebuild(name: str) -> dict[str, Any]:
    """Run (or resume) the recorded rebuild of projection `name` to its end."""
    try:
        final = _rebuilds().run(name, should_stop=shutting_down.is_set)
    except NoRebuildError:
        return {"projection": name, "state": "none"}
    except RebuildRunningError:
        return {"projection": name, "state": "running elsewhere"}
    return {"projection": name, "version": final.version, "state": final.state}


@shared_task(name=RESUME_REBUILDS_TASK, ignore_result=True)  # type: ignore[untyped-decorator]
def resume_rebuilds() -> list[str]:
    """Send a rebuild task for every rebuild left interrupted (its owner gone)."""
    names = _rebuilds().interrupted()
    for name in names:
        log.info("resuming the interrupted rebuild of %s", name)
        rebuild.delay(name)
    return names

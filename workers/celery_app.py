"""The Celery app: Redis broker, the projection catch-up task, and the beat backstop.

`celery -A workers.celery_app worker` (or `bookstore worker`) runs it. The broker URL is
BOOKSTORE_BROKER_URL. Results are not stored: tasks report through the tracking table.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_ready

from adapters.celery_wakeups import CATCH_UP_TASK, RESUME_REBUILDS_TASK
from bookstore.settings import get_settings

MAIL_TASK = "bookstore.mail.deliver_pending"
BACKSTOP_SECONDS = 1.0
MAIL_POLL_SECONDS = 5.0
# Longer than any task may run (see the task's time limit): a message a killed worker
# had taken is handed out again only after this.
VISIBILITY_TIMEOUT_SECONDS = 300


def create_celery_app(broker_url: str | None = None) -> Celery:
    """The app, configured for at-least-once delivery of idempotent catch-ups."""
    celery = Celery("bookstore", include=["workers.tasks", "workers.mail", "workers.rebuilds"])
    celery.conf.update(
        broker_url=broker_url or get_settings().broker_url or "redis://127.0.0.1:6379/0",
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
        task_ignore_result=True,
        task_acks_late=True,
        # A worker killed mid-task gives its message back instead of losing it.
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        beat_schedule={
            "projections-backstop": {
                "task": CATCH_UP_TASK,
                "schedule": BACKSTOP_SECONDS,
                # A backstop nobody ran in time is worthless: drop it, the next one comes.
                "options": {"expires": 5 * BACKSTOP_SECONDS},
            },
            "mail-outbox": {
                "task": MAIL_TASK,
                "schedule": MAIL_POLL_SECONDS,
                "options": {"expires": 2 * MAIL_POLL_SECONDS},
            },
        },
    )
    return celery


app = create_celery_app()


@worker_ready.connect  # type: ignore[untyped-decorator]
def _catch_up_on_start(sender: Any = None, **_: Any) -> None:
    """Events committed while no worker ran are processed as soon as one starts, and a
    rebuild a dead worker left interrupted is resumed."""
    if sender is not None:
        sender.app.send_task(CATCH_UP_TASK)
        sender.app.send_task(RESUME_REBUILDS_TASK)

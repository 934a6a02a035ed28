"""The mail task for Celery workers: send what waits in the outbox.

With a broker configured, the server process does not send mail itself; a worker runs
this task (on a beat schedule, so mail goes out within seconds even if no one nudges it).
The sending code is shared with the embedded mode's in-process drainer.
"""

from __future__ import annotations

from functools import lru_cache

from celery import shared_task

from bookstore.auth_store import MailOutbox
from bookstore.databases import make_engine
from bookstore.mail_delivery import deliver_pending
from bookstore.settings import get_settings

TASK_NAME = "bookstore.mail.deliver_pending"


@lru_cache(maxsize=1)
def _outbox() -> MailOutbox:
    """One small pool per worker process, made on first use (after the fork)."""
    settings = get_settings()
    return MailOutbox(make_engine(settings.resolved_event_store_url, pool_size=2))


@shared_task(name=TASK_NAME, ignore_result=True)  # type: ignore[untyped-decorator]
def deliver_pending_mail() -> int:
    """Send waiting mail through SMTP (or log it when no SMTP server is configured)."""
    settings = get_settings()
    return deliver_pending(_outbox(), smtp_url=settings.smtp_url, sender=settings.mail_from)

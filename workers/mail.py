"""The mail task for Celery workers: send what waits in the outbox.

With a broker configured, the server process does not send mail itself; a worker runs
this task on the beat schedule (`workers.celery_app`, every few seconds). The sending code
is shared with the embedded mode's in-process drainer (`bookstore.mail_delivery`).
"""

from __future__ import annotations

from celery import shared_task

from bookstore.mail_delivery import deliver_pending
from workers import runtime

TASK_NAME = "bookstore.mail.deliver_pending"


@shared_task(name=TASK_NAME, ignore_result=True)  # type: ignore[untyped-decorator]
def deliver_pending_mail() -> int:
    """Send waiting mail through SMTP (or log it when no SMTP server is configured)."""
    container = runtime.container()
    return deliver_pending(
        container.auth.outbox,
        smtp_url=container.settings.smtp_url,
        sender=container.settings.mail_from,
    )

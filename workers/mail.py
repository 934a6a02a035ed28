"""The mail task for Celery workers: send what waits in the outbox.

With a broker configured, the server process does not send mail itself; a worker runs
this task on the beat schedule (`workers.celery_app`, every few seconds). The sending code
is shared with the embedded mode's in-process drainer (`adapters.smtp_mail`).
"""

from __future__ import annotations

from celery import shared_task

from adapters.smtp_mail import deliver_pending
from workers import runtime

TASK_NAME = "bookstore.mail.deliver_pending"


# Time-limited like the catch-up (and below the broker's visibility timeout): a hung
# SMTP server cannot hold a worker; the leases let the next run send what is left.
@shared_task(  # type: ignore[untyped-decorator]
    name=TASK_NAME, ignore_result=True, soft_time_limit=60, time_limit=90
)
def deliver_pending_mail() -> int:
    """Send waiting mail through SMTP (without one: kept in the outbox, see `deliver_pending`)."""
    container = runtime.container()
    return deliver_pending(
        container.auth.outbox,
        smtp_url=container.settings.smtp_url,
        sender=container.settings.mail_from,
        outbox_is_mailbox=container.settings.outbox_is_mailbox,
    )

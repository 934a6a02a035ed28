"""Sending the mail outbox: through SMTP when `BOOKSTORE_SMTP_URL` is set, else to the log.

The request only writes a row to the outbox (durable, in the write database); sending
happens here, outside the request, so a slow or absent mail server never slows a reset
request down nor tells a caller whether an address exists. In embedded mode a thread of
the server process drains the outbox; with a broker, the Celery task in `workers.mail`
calls the same `deliver_pending`. (This lives in `bookstore`, not `workers`, because the
composition root starts the embedded drainer and the API must not depend on `workers`.)
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from adapters.mail_outbox import MailOutbox, OutboxMail

log = logging.getLogger(__name__)

SMTP_TIMEOUT_SECONDS = 10


def send_smtp(mail: OutboxMail, *, smtp_url: str, sender: str) -> None:
    """Send one message. `smtp://user:pass@host:port` (STARTTLS if offered) or `smtps://`."""
    parts = urlsplit(smtp_url)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message.set_content(mail.body)
    host = parts.hostname or "localhost"
    if parts.scheme == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            host, parts.port or 465, timeout=SMTP_TIMEOUT_SECONDS
        )
    else:
        client = smtplib.SMTP(host, parts.port or 25, timeout=SMTP_TIMEOUT_SECONDS)
    with client:
        if parts.scheme != "smtps":
            client.ehlo()
            if client.has_extn("starttls"):
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message)


def deliver_pending(
    outbox: MailOutbox, *, smtp_url: str | None, sender: str, limit: int = 50
) -> int:
    """Send what is waiting; returns how many went out. A failure is retried next time."""
    sent = 0
    for mail in outbox.pending(limit):
        if not outbox.claim(mail.id):
            continue  # another sender has it
        try:
            if smtp_url:
                send_smtp(mail, smtp_url=smtp_url, sender=sender)
            else:
                # No mail server configured (development): say that a mail is ready, but
                # not what it says; the body holds a one-time token and never goes to a log.
                log.info(
                    "mail %s to %s (%r) not sent: no BOOKSTORE_SMTP_URL; "
                    "read it with `bookstore mail outbox`",
                    mail.id,
                    mail.recipient,
                    mail.subject,
                )
        except (OSError, smtplib.SMTPException) as error:
            log.warning("mail %s to %s failed: %s", mail.id, mail.recipient, error)
            outbox.mark_failed(mail.id, f"{type(error).__name__}: {error}")
            continue
        outbox.mark_sent(mail.id)
        sent += 1
    return sent


class OutboxDrainer:
    """The in-process mail worker of embedded mode: a thread woken on new mail.

    It also looks every `interval` seconds, so mail left by a crash or a failed attempt is
    retried without anybody waking it.
    """

    def __init__(
        self, outbox: MailOutbox, *, smtp_url: str | None, sender: str, interval: float = 30.0
    ) -> None:
        self.outbox = outbox
        self.smtp_url = smtp_url
        self.sender = sender
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mail-outbox", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                deliver_pending(self.outbox, smtp_url=self.smtp_url, sender=self.sender)
            except Exception:
                # The database may be briefly away; the next round tries again.
                log.exception("mail outbox: delivery round failed")
            self._wake.wait(self.interval)
            self._wake.clear()

"""Sending the mail outbox: through SMTP when `BOOKSTORE_SMTP_URL` is set.

Without it, in development the outbox itself is the mailbox (`bookstore mail outbox`); in
production mail stays queued, never marked sent, until an SMTP server is configured.

The request only writes a row to the outbox (durable, in the write database); sending
happens here, outside the request, so a slow or absent mail server never slows a reset
request down nor tells a caller whether an address exists. In embedded mode a thread of
the server process drains the outbox; with a broker, the Celery task in `workers.mail`
calls the same `deliver_pending`. (This lives in `adapters`, not `workers`, because the
composition root starts the embedded drainer and the API must not depend on `workers`.)
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
import time
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from adapters.mail_outbox import MailOutbox, OutboxMail

log = logging.getLogger(__name__)

SMTP_TIMEOUT_SECONDS = 10
# Mail held for want of an SMTP server is said once in this many seconds, not every round.
HELD_MAIL_WARNING_SECONDS = 600.0
_held_mail_warned_at: float | None = None


class InsecureSmtpError(smtplib.SMTPException):
    """The server would not encrypt, and the URL holds credentials: they stay unsent."""


def send_smtp(mail: OutboxMail, *, smtp_url: str, sender: str) -> None:
    """Send one message through `smtp://user:pass@host:port` or `smtps://`.

    `smtps://` and STARTTLS verify the server's certificate and name. With credentials,
    `smtp://` requires STARTTLS: a server (or a meddler on the path) that does not offer it
    gets an error, never the password in plain text. Without credentials STARTTLS is used
    when offered.
    """
    parts = urlsplit(smtp_url)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message.set_content(mail.body)
    host = parts.hostname or "localhost"
    tls = ssl.create_default_context()
    if parts.scheme == "smtps":
        # Python's own default for SMTP_SSL checks no certificate at all: pass ours.
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            host, parts.port or 465, timeout=SMTP_TIMEOUT_SECONDS, context=tls
        )
    else:
        client = smtplib.SMTP(host, parts.port or 25, timeout=SMTP_TIMEOUT_SECONDS)
    with client:
        if parts.scheme != "smtps":
            client.ehlo()
            if client.has_extn("starttls"):
                client.starttls(context=tls)
                client.ehlo()
            elif parts.username:
                msg = f"{host} offers no STARTTLS; credentials are never sent unencrypted"
                raise InsecureSmtpError(msg)
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message)


def deliver_pending(
    outbox: MailOutbox,
    *,
    smtp_url: str | None,
    sender: str,
    outbox_is_mailbox: bool = False,
    limit: int = 50,
) -> int:
    """Send what is waiting; returns how many went out. A failure is retried next time.

    With no SMTP server, mail stays queued (it was not sent, and an operator sees it
    waiting), unless `outbox_is_mailbox` (development: mail is read with `bookstore mail
    outbox`, so it counts as delivered). Sent mail keeps no body: it held a one-time token.
    """
    if not smtp_url and not outbox_is_mailbox:
        _warn_of_held_mail(outbox)
        return 0
    sent = 0
    for mail in outbox.pending(limit):
        if not outbox.claim(mail.id):
            continue  # another sender has it
        if not smtp_url:
            # Development: say that a mail is ready, but not what it says (the body holds a
            # one-time token and never goes to a log); it stays readable in the outbox.
            log.info(
                "mail %s to %s (%r) is in the outbox, no BOOKSTORE_SMTP_URL; "
                "read it with `bookstore mail outbox`",
                mail.id,
                mail.recipient,
                mail.subject,
            )
            outbox.mark_sent(mail.id, keep_body=True)
            sent += 1
            continue
        try:
            send_smtp(mail, smtp_url=smtp_url, sender=sender)
        except (OSError, smtplib.SMTPException) as error:
            log.warning("mail %s to %s failed: %s", mail.id, mail.recipient, error)
            outbox.mark_failed(mail.id, f"{type(error).__name__}: {error}")
            continue
        outbox.mark_sent(mail.id)
        sent += 1
    return sent


def _warn_of_held_mail(outbox: MailOutbox) -> None:
    global _held_mail_warned_at  # noqa: PLW0603 (one process-wide reminder)
    now = time.monotonic()
    if _held_mail_warned_at is not None and now - _held_mail_warned_at < HELD_MAIL_WARNING_SECONDS:
        return
    waiting = len(outbox.pending())
    if waiting:
        _held_mail_warned_at = now
        log.warning(
            "%d mail(s) waiting and no BOOKSTORE_SMTP_URL: they stay queued until one is set",
            waiting,
        )


class OutboxDrainer:
    """The in-process mail worker of embedded mode: a thread woken on new mail.

    It also looks every `interval` seconds, so mail left by a crash or a failed attempt is
    retried without anybody waking it.
    """

    def __init__(
        self,
        outbox: MailOutbox,
        *,
        smtp_url: str | None,
        sender: str,
        outbox_is_mailbox: bool = False,
        interval: float = 30.0,
    ) -> None:
        self.outbox = outbox
        self.smtp_url = smtp_url
        self.sender = sender
        self.outbox_is_mailbox = outbox_is_mailbox
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
                deliver_pending(
                    self.outbox,
                    smtp_url=self.smtp_url,
                    sender=self.sender,
                    outbox_is_mailbox=self.outbox_is_mailbox,
                )
            except Exception:
                # The database may be briefly away; the next round tries again.
                log.exception("mail outbox: delivery round failed")
            self._wake.wait(self.interval)
            self._wake.clear()

"""Sending the outbox: through a real SMTP exchange, retried after a failure."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from email import message_from_bytes

import pytest

from adapters.smtp_mail import deliver_pending
from bookstore.bootstrap import Container
from workers import runtime
from workers.mail import deliver_pending_mail

SENDER = "Bookstore <no-reply@bookstore.example>"


class TinySmtp(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: no STARTTLS, no auth; keeps what it is sent."""

    received: list[bytes]

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 tiny ready")
        while line := self.rfile.readline():
            command = line.decode().strip().upper()
            if command.startswith(("EHLO", "HELO")):
                self.reply("250 tiny")
            elif command == "DATA":
                self.reply("354 go on")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk
                self.server.received.append(data)  # type: ignore[attr-defined]
                self.reply("250 queued")
            elif command == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


@pytest.fixture
def smtp_server() -> Iterator[tuple[str, list[bytes]]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), TinySmtp)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"smtp://127.0.0.1:{server.server_address[1]}", server.received  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def test_waiting_mail_goes_out_through_smtp_once(
    container: Container, smtp_server: tuple[str, list[bytes]]
) -> None:
    url, received = smtp_server
    outbox = container.auth.outbox
    outbox.enqueue(recipient="reader@example.com", subject="Hello", body="token: abc123")

    assert deliver_pending(outbox, smtp_url=url, sender=SENDER) == 1
    assert deliver_pending(outbox, smtp_url=url, sender=SENDER) == 0

    (raw,) = received
    message = message_from_bytes(raw)
    assert message["To"] == "reader@example.com"
    assert message["Subject"] == "Hello"
    assert "token: abc123" in message.get_payload()  # type: ignore[operator]
    (mail,) = outbox.messages()
    assert mail.sent_at is not None
    assert mail.attempts == 1


def test_a_failed_send_is_kept_and_retried(
    container: Container, smtp_server: tuple[str, list[bytes]]
) -> None:
    url, received = smtp_server
    outbox = container.auth.outbox
    outbox.enqueue(recipient="reader@example.com", subject="Hello", body="hi")
    nobody_listens = "smtp://127.0.0.1:1"

    assert deliver_pending(outbox, smtp_url=nobody_listens, sender=SENDER) == 0
    (mail,) = outbox.messages()
    assert mail.sent_at is None
    assert mail.attempts == 1
    assert mail.last_error

    assert deliver_pending(outbox, smtp_url=url, sender=SENDER) == 1
    assert len(received) == 1


def test_the_celery_task_sends_the_outbox(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "_container", container)
    container.auth.outbox.enqueue(recipient="reader@example.com", subject="Hi", body="hi")
    assert deliver_pending_mail() == 1  # no SMTP configured: logged, marked sent
    assert container.auth.outbox.pending() == []


def test_a_mail_leased_by_one_sender_is_not_sent_by_another(
    container: Container, smtp_server: tuple[str, list[bytes]]
) -> None:
    url, received = smtp_server
    outbox = container.auth.outbox
    mail_id = outbox.enqueue(recipient="reader@example.com", subject="Hi", body="hello")
    assert outbox.claim(mail_id) is True  # another worker is sending it right now
    assert outbox.claim(mail_id) is False
    assert deliver_pending(outbox, smtp_url=url, sender=SENDER) == 0
    assert received == []
    assert [m.id for m in outbox.pending()] == [mail_id]


def test_a_lease_that_ran_out_lets_the_mail_go_out(
    container: Container, smtp_server: tuple[str, list[bytes]]
) -> None:
    url, received = smtp_server
    outbox = container.auth.outbox
    mail_id = outbox.enqueue(recipient="reader@example.com", subject="Hi", body="hello")
    assert outbox.claim(mail_id, lease_seconds=-1) is True  # a sender that died mid-send
    assert deliver_pending(outbox, smtp_url=url, sender=SENDER) == 1
    assert len(received) == 1
    assert outbox.pending() == []
    assert outbox.claim(mail_id) is False  # sent mail is never leased again

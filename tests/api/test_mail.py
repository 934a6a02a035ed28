"""Sending the outbox: through a real SMTP exchange, retried after a failure; TLS enforced."""

from __future__ import annotations

import socket
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest

from adapters.smtp_mail import deliver_pending
from bookstore import bootstrap
from bookstore.bootstrap import Container
from tests.conftest import make_settings
from workers import runtime
from workers.mail import deliver_pending_mail

SENDER = "Bookstore <no-reply@bookstore.example>"
# Every command line each test server received, by the server's URL.
COMMANDS_RECEIVED: dict[str, list[str]] = {}


class TinySmtp(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: no STARTTLS, AUTH offered (and anything accepted);
    keeps what it is sent and every command line."""

    received: list[bytes]

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 tiny ready")
        while line := self.rfile.readline():
            command = line.decode().strip().upper()
            self.server.commands.append(command)  # type: ignore[attr-defined]
            if command.startswith(("EHLO", "HELO")):
                self.reply("250-tiny")
                self.reply("250 AUTH PLAIN LOGIN")  # offered, and in the clear: the trap
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
    server.commands = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"smtp://127.0.0.1:{server.server_address[1]}"
    COMMANDS_RECEIVED[url] = server.commands  # type: ignore[attr-defined]
    try:
        yield url, server.received  # type: ignore[attr-defined]
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
    assert "token: abc123" in message.get_payload()
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


def test_a_sent_mail_keeps_no_token_in_the_outbox(
    container: Container, smtp_server: tuple[str, list[bytes]]
) -> None:
    url, received = smtp_server
    outbox = container.auth.outbox
    outbox.enqueue(recipient="reader@example.com", subject="Reset", body="token: abc123")

    assert deliver_pending(outbox, smtp_url=url, sender=SENDER) == 1

    assert b"token: abc123" in received[0]
    (mail,) = outbox.messages()
    assert "abc123" not in mail.body


def test_credentials_never_go_to_a_server_that_offers_no_starttls(
    container: Container, smtp_server: tuple[str, list[bytes]]
) -> None:
    url, received = smtp_server
    with_credentials = url.replace("smtp://", "smtp://mailer:s3cret@")
    outbox = container.auth.outbox
    outbox.enqueue(recipient="reader@example.com", subject="Hello", body="hi")

    assert deliver_pending(outbox, smtp_url=with_credentials, sender=SENDER) == 0

    (mail,) = outbox.messages()
    assert mail.sent_at is None
    assert mail.last_error is not None
    assert "STARTTLS" in mail.last_error
    assert received == []
    commands = COMMANDS_RECEIVED[url]
    assert not any(command.startswith("AUTH") for command in commands), commands


def test_with_no_smtp_server_in_production_mail_stays_queued(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(database_url, env="production", smtp_url=None)
    bootstrap.migrate(settings)
    production = bootstrap.build(settings)
    monkeypatch.setattr(runtime, "_container", production)
    try:
        outbox = production.auth.outbox
        mail_id = outbox.enqueue(recipient="reader@example.com", subject="Reset", body="t")

        assert deliver_pending_mail() == 0

        assert [mail.id for mail in outbox.pending()] == [mail_id]
        assert outbox.backlog().waiting == 1
    finally:
        production.close()


@pytest.fixture
def self_signed_smtps(tmp_path: Path) -> Iterator[tuple[str, list[bytes]]]:
    """An SMTP-over-TLS server whose certificate nobody vouches for."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    class TlsServer(socketserver.ThreadingTCPServer):
        def get_request(self) -> tuple[socket.socket, object]:
            raw, address = self.socket.accept()
            return context.wrap_socket(raw, server_side=True), address

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # the client hanging up on our certificate is what we expect

    server = TlsServer(("127.0.0.1", 0), TinySmtp)
    server.received = []  # type: ignore[attr-defined]
    server.commands = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"smtps://127.0.0.1:{server.server_address[1]}", server.received  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def test_smtps_refuses_a_server_whose_certificate_is_not_trusted(
    container: Container, self_signed_smtps: tuple[str, list[bytes]]
) -> None:
    url, received = self_signed_smtps
    outbox = container.auth.outbox
    outbox.enqueue(recipient="reader@example.com", subject="Reset", body="token: abc123")

    assert deliver_pending(outbox, smtp_url=url, sender=SENDER) == 0

    assert received == []
    (mail,) = outbox.messages()
    assert mail.sent_at is None
    assert mail.last_error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in mail.last_error

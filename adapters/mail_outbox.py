"""The durable mail outbox: a reset mail survives a crash between request and sending.

Senders lease a mail before sending it, so two workers never send one twice. Once sent, a
mail's body is blanked: a reset token lives in the table only until it has gone out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, insert, or_, select, update

from adapters.clock import as_utc, utcnow
from adapters.write_tables import (
    mail_outbox,
)

log = logging.getLogger(__name__)

# What a sent mail's body becomes: the token it held went out and is not kept.
SENT_BODY = "(sent; the body is not kept once sent)"


@dataclass(frozen=True)
class Backlog:
    waiting: int
    oldest: datetime | None


@dataclass(frozen=True)
class OutboxMail:
    id: int
    recipient: str
    subject: str
    body: str
    created_at: datetime
    sent_at: datetime | None
    attempts: int
    last_error: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "to": self.recipient,
            "subject": self.subject,
            "body": self.body,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "sent_at": self.sent_at.isoformat().replace("+00:00", "Z") if self.sent_at else None,
            "attempts": self.attempts,
            "last_error": self.last_error,
        }


class MailOutbox:
    """Mail to send, written in the request; a worker sends it and marks it sent."""

    max_attempts = 5

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def enqueue(self, *, recipient: str, subject: str, body: str) -> int:
        with self.engine.begin() as connection:
            result = connection.execute(
                insert(mail_outbox).values(
                    recipient=recipient,
                    subject=subject,
                    body=body,
                    created_at=utcnow(),
                    attempts=0,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def pending(self, limit: int = 50) -> list[OutboxMail]:
        return self._select(
            mail_outbox.c.sent_at.is_(None),
            mail_outbox.c.attempts < self.max_attempts,
            limit=limit,
        )

    def messages(self, *, recipient: str | None = None) -> list[OutboxMail]:
        """Every message, oldest first (optionally only those to one address)."""
        conditions = [] if recipient is None else [mail_outbox.c.recipient == recipient.lower()]
        return self._select(*conditions)

    def claim(self, mail_id: int, *, lease_seconds: float = 120.0) -> bool:
        """Lease an unsent mail for sending; False when another sender holds it.

        One conditional UPDATE: of two workers draining at once, only one gets each mail.
        A sender that dies mid-send lets its lease run out, and the mail is sent later.
        """
        now = utcnow()
        with self.engine.begin() as connection:
            result = connection.execute(
                update(mail_outbox)
                .where(
                    mail_outbox.c.id == mail_id,
                    mail_outbox.c.sent_at.is_(None),
                    or_(
                        mail_outbox.c.claimed_until.is_(None),
                        mail_outbox.c.claimed_until < now,
                    ),
                )
                .values(claimed_until=now + timedelta(seconds=lease_seconds))
            )
            return result.rowcount == 1

    def mark_sent(self, mail_id: int, *, keep_body: bool = False) -> None:
        """Record a mail as sent, and blank its body: a reset mail holds a one-time token,
        which must not outlive the sending in a table (`keep_body` only where the outbox is
        itself the mailbox, in development)."""
        values: dict[str, Any] = {
            "sent_at": utcnow(),
            "attempts": mail_outbox.c.attempts + 1,
            "last_error": None,
        }
        if not keep_body:
            values["body"] = SENT_BODY
        with self.engine.begin() as connection:
            connection.execute(
                update(mail_outbox).where(mail_outbox.c.id == mail_id).values(values)
            )

    def backlog(self) -> Backlog:
        """How many mails wait to be sent, and since when (for readiness checks)."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(func.count(), func.min(mail_outbox.c.created_at)).where(
                    mail_outbox.c.sent_at.is_(None),
                    mail_outbox.c.attempts < self.max_attempts,
                )
            ).one()
        count, oldest = row
        return Backlog(waiting=int(count), oldest=as_utc(oldest) if oldest else None)

    def mark_failed(self, mail_id: int, error: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(mail_outbox)
                .where(mail_outbox.c.id == mail_id)
                .values(
                    attempts=mail_outbox.c.attempts + 1,
                    last_error=error[:2000],
                    claimed_until=None,
                )
            )

    def _select(self, *conditions: Any, limit: int | None = None) -> list[OutboxMail]:
        query = select(mail_outbox).where(*conditions).order_by(mail_outbox.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            OutboxMail(
                id=row.id,
                recipient=row.recipient,
                subject=row.subject,
                body=row.body,
                created_at=as_utc(row.created_at),
                sent_at=as_utc(row.sent_at) if row.sent_at else None,
                attempts=row.attempts,
                last_error=row.last_error,
            )
            for row in rows
        ]

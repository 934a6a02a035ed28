"""Authentication state that must never enter the event log: sessions, reset tokens, mail.

Refresh tokens and reset tokens are stored only as SHA-256 digests (they are long random
values, so a fast digest is enough: nothing to brute-force), which means a copy of these
tables cannot be replayed. The mail outbox is durable so that a reset mail survives a crash
between the request and the sending. The login throttle counts failures in Redis when one
is configured and in a table of the write database otherwise: unlike process memory, the
table is shared by every server process, so N workers do not give an attacker N x 10 tries.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

import redis
from sqlalchemy import Engine, and_, delete, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bookstore.credential_store import (
    login_failures,
    mail_outbox,
    password_reset_tokens,
    refresh_tokens,
)
from bookstore.settings import Settings

log = logging.getLogger(__name__)


def digest(token: str) -> str:
    """What is stored instead of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; every moment stored here is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ---------------------------------------------------------------------- refresh tokens


class RefreshOutcome(StrEnum):
    """What happened when a refresh token was presented."""

    ACCEPTED = "accepted"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"
    REUSED = "reused"


@dataclass(frozen=True)
class RefreshUse:
    outcome: RefreshOutcome
    family_id: str | None = None
    user_id: str | None = None


class RefreshTokenStore:
    """One row per refresh token issued; a family is every token rotated from one login."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, *, jti: str, family_id: str, user_id: UUID, expires_at: datetime) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(refresh_tokens).values(
                    jti_hash=digest(jti),
                    family_id=family_id,
                    user_id=str(user_id),
                    issued_at=utcnow(),
                    expires_at=expires_at,
                )
            )

    def use(self, jti: str) -> RefreshUse:
        """Mark a token used, once. A second use revokes its whole family (theft signal)."""
        key = digest(jti)
        now = utcnow()
        with self.engine.begin() as connection:
            # One conditional UPDATE: two concurrent uses cannot both succeed.
            claimed = connection.execute(
                update(refresh_tokens)
                .where(
                    refresh_tokens.c.jti_hash == key,
                    refresh_tokens.c.used_at.is_(None),
                    refresh_tokens.c.revoked_at.is_(None),
                    refresh_tokens.c.expires_at > now,
                )
                .values(used_at=now)
            ).rowcount
            row = connection.execute(
                select(
                    refresh_tokens.c.family_id,
                    refresh_tokens.c.user_id,
                    refresh_tokens.c.used_at,
                    refresh_tokens.c.revoked_at,
                ).where(refresh_tokens.c.jti_hash == key)
            ).one_or_none()
            if row is None:
                return RefreshUse(RefreshOutcome.UNKNOWN)
            if claimed == 1:
                return RefreshUse(RefreshOutcome.ACCEPTED, row.family_id, row.user_id)
            if row.revoked_at is not None:
                outcome = RefreshOutcome.REVOKED
            elif row.used_at is not None:
                outcome = RefreshOutcome.REUSED
                self._revoke(connection, refresh_tokens.c.family_id == row.family_id, now)
            else:
                outcome = RefreshOutcome.EXPIRED
            return RefreshUse(outcome, row.family_id, row.user_id)

    def revoke_family(self, family_id: str) -> None:
        with self.engine.begin() as connection:
            self._revoke(connection, refresh_tokens.c.family_id == family_id, utcnow())

    def revoke_user(self, user_id: UUID) -> None:
        """End every refresh family of a user (password reset, deactivation)."""
        with self.engine.begin() as connection:
            self._revoke(connection, refresh_tokens.c.user_id == str(user_id), utcnow())

    @staticmethod
    def _revoke(connection: Any, condition: Any, now: datetime) -> None:
        connection.execute(
            update(refresh_tokens)
            .where(and_(condition, refresh_tokens.c.revoked_at.is_(None)))
            .values(revoked_at=now)
        )


# ---------------------------------------------------------------------- reset tokens


class ResetTokenStore:
    """One-time password-reset tokens: the raw value goes out by mail, only a digest stays."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def issue(self, user_id: UUID, *, ttl: timedelta) -> str:
        token = secrets.token_urlsafe(32)
        now = utcnow()
        with self.engine.begin() as connection:
            connection.execute(
                insert(password_reset_tokens).values(
                    token_hash=digest(token),
                    user_id=str(user_id),
                    created_at=now,
                    expires_at=now + ttl,
                )
            )
        return token

    def redeem(self, token: str) -> UUID | None:
        """Burn a valid token and every other open token of its user; None if not valid."""
        key = digest(token)
        now = utcnow()
        with self.engine.begin() as connection:
            burnt = connection.execute(
                update(password_reset_tokens)
                .where(
                    password_reset_tokens.c.token_hash == key,
                    password_reset_tokens.c.used_at.is_(None),
                    password_reset_tokens.c.expires_at > now,
                )
                .values(used_at=now)
            ).rowcount
            if burnt != 1:
                return None
            user_id = connection.execute(
                select(password_reset_tokens.c.user_id).where(
                    password_reset_tokens.c.token_hash == key
                )
            ).scalar_one()
            connection.execute(
                update(password_reset_tokens)
                .where(
                    password_reset_tokens.c.user_id == user_id,
                    password_reset_tokens.c.used_at.is_(None),
                )
                .values(used_at=now)
            )
        return UUID(user_id)


# ---------------------------------------------------------------------- mail outbox


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

    def mark_sent(self, mail_id: int) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(mail_outbox)
                .where(mail_outbox.c.id == mail_id)
                .values(sent_at=utcnow(), attempts=mail_outbox.c.attempts + 1, last_error=None)
            )

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
                created_at=_aware(row.created_at),
                sent_at=_aware(row.sent_at) if row.sent_at else None,
                attempts=row.attempts,
                last_error=row.last_error,
            )
            for row in rows
        ]


# ---------------------------------------------------------------------- login throttle


class LoginThrottle(Protocol):
    """Counts failed logins per key ("email:..." or "ip:...") in a fixed window."""

    def retry_after(self, keys: list[str]) -> int | None:
        """Seconds until the first blocked key frees up, or None if none is blocked."""

    def record_failure(self, keys: list[str]) -> None: ...

    def reset(self, key: str) -> None: ...


class SqlLoginThrottle:
    """The counter in the write database, shared by every server process."""

    def __init__(self, engine: Engine, *, max_failures: int, window: timedelta) -> None:
        self.engine = engine
        self.max_failures = max_failures
        self.window = window
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    def retry_after(self, keys: list[str]) -> int | None:
        now = utcnow()
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(login_failures.c.window_started_at).where(
                    login_failures.c.key.in_(keys),
                    login_failures.c.failures >= self.max_failures,
                    login_failures.c.window_started_at > now - self.window,
                )
            ).all()
        if not rows:
            return None
        ends = max(_aware(row.window_started_at) + self.window for row in rows)
        return max(1, math.ceil((ends - now).total_seconds()))

    def record_failure(self, keys: list[str]) -> None:
        now = utcnow()
        with self.engine.begin() as connection:
            for key in keys:
                counted = connection.execute(
                    update(login_failures)
                    .where(
                        login_failures.c.key == key,
                        login_failures.c.window_started_at > now - self.window,
                    )
                    .values(failures=login_failures.c.failures + 1)
                ).rowcount
                if counted:
                    continue
                # No row, or an expired window: start a new one.
                statement = self._insert(login_failures).values(
                    key=key, failures=1, window_started_at=now
                )
                connection.execute(
                    statement.on_conflict_do_update(
                        index_elements=[login_failures.c.key],
                        set_={"failures": 1, "window_started_at": now},
                    )
                )

    def reset(self, key: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(login_failures).where(login_failures.c.key == key))


class RedisLoginThrottle:
    """The counter in Redis: one key per email or address, expiring with its window."""

    prefix = "bookstore:login-failures:"

    def __init__(self, client: redis.Redis, *, max_failures: int, window: timedelta) -> None:
        self.client = client
        self.max_failures = max_failures
        self.window_seconds = max(1, int(window.total_seconds()))

    def retry_after(self, keys: list[str]) -> int | None:
        try:
            names = [self.prefix + key for key in keys]
            counts = self.client.mget(names)
            blocked = [
                name
                for name, count in zip(names, counts, strict=True)
                if count is not None and int(count) >= self.max_failures
            ]
            if not blocked:
                return None
            ttls = [int(self.client.ttl(name)) for name in blocked]
        except redis.RedisError:
            # Failing open keeps logins working through a Redis outage; it is logged loudly.
            log.exception("login throttle: Redis unavailable, not throttling")
            return None
        return max(1, *ttls)

    def record_failure(self, keys: list[str]) -> None:
        try:
            pipe = self.client.pipeline(transaction=True)
            for key in keys:
                # SET NX starts the window on the first failure only; INCR counts.
                pipe.set(self.prefix + key, 0, ex=self.window_seconds, nx=True)
                pipe.incr(self.prefix + key)
            pipe.execute()
        except redis.RedisError:
            log.exception("login throttle: Redis unavailable, failure not counted")

    def reset(self, key: str) -> None:
        try:
            self.client.delete(self.prefix + key)
        except redis.RedisError:
            log.exception("login throttle: Redis unavailable, counter not reset")


# ---------------------------------------------------------------------- together


@dataclass
class AuthStore:
    """Everything authentication keeps outside the event log, for one process."""

    refresh_tokens: RefreshTokenStore
    reset_tokens: ResetTokenStore
    outbox: MailOutbox
    throttle: LoginThrottle

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> AuthStore:
        window = timedelta(seconds=settings.login_failure_window_seconds)
        redis_url = settings.resolved_redis_url
        throttle: LoginThrottle
        if redis_url and redis_url.startswith(("redis://", "rediss://", "unix://")):
            client = redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)
            throttle = RedisLoginThrottle(
                client, max_failures=settings.login_max_failures, window=window
            )
        else:
            throttle = SqlLoginThrottle(
                engine, max_failures=settings.login_max_failures, window=window
            )
        return cls(
            refresh_tokens=RefreshTokenStore(engine),
            reset_tokens=ResetTokenStore(engine),
            outbox=MailOutbox(engine),
            throttle=throttle,
        )

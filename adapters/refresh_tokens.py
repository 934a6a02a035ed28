"""Refresh-token families, stored only as SHA-256 digests of each token's `jti`.

A token is a long random value, so a fast digest is enough (nothing to brute-force) and a
copy of the table cannot be replayed. Each token works once; a reuse revokes its family.

Rotation is one transaction: the presented token is marked used and its successor recorded
together. Were they two steps, a reuse detected between them (a thief and the owner
refreshing at once) would revoke the family's rows without the successor, which the winner
would then record alive. In one transaction, a second presenter's conditional UPDATE waits
for the winner's row lock (PostgreSQL) or write lock (SQLite), finds the token used, and
its revocation then sees the successor too.

A family also has an absolute lifetime: every row keeps the family's start (its login),
and a token of a family older than the caller's `max_session_age` is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, and_, insert, select, update

from adapters.clock import as_utc, utcnow
from adapters.digests import digest
from adapters.write_tables import refresh_tokens

log = logging.getLogger(__name__)


class RefreshOutcome(StrEnum):
    """What happened when a refresh token was presented."""

    ACCEPTED = "accepted"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    SESSION_EXPIRED = "past its session's lifetime"
    REVOKED = "revoked"
    REUSED = "reused"


@dataclass(frozen=True)
class RefreshUse:
    outcome: RefreshOutcome
    family_id: str | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class Successor:
    """The token to record in place of the one presented (same family, same user)."""

    jti: str
    expires_at: datetime


class RefreshTokenStore:
    """One row per refresh token issued; a family is every token rotated from one login."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, *, jti: str, family_id: str, user_id: UUID, expires_at: datetime) -> None:
        """The first token of a new family (a login): the family's lifetime starts now."""
        now = utcnow()
        with self.engine.begin() as connection:
            connection.execute(
                insert(refresh_tokens).values(
                    jti_hash=digest(jti),
                    family_id=family_id,
                    user_id=str(user_id),
                    issued_at=now,
                    expires_at=expires_at,
                    family_started_at=now,
                )
            )

    def rotate(self, jti: str, successor: Successor, *, max_session_age: timedelta) -> RefreshUse:
        """Use a token and record its successor, atomically; a reuse revokes the family.

        The successor is recorded only if the token was accepted. Any other outcome records
        nothing, and a reuse (or a session past its lifetime) revokes the whole family,
        every row of which exists by then.
        """
        key = digest(jti)
        now = utcnow()
        with self.engine.begin() as connection:
            # One conditional UPDATE: of concurrent presenters, exactly one claims the token.
            claimed = connection.execute(
                update(refresh_tokens)
                .where(
                    refresh_tokens.c.jti_hash == key,
                    refresh_tokens.c.used_at.is_(None),
                    refresh_tokens.c.revoked_at.is_(None),
                    refresh_tokens.c.expires_at > now,
                    refresh_tokens.c.family_started_at > now - max_session_age,
                )
                .values(used_at=now)
            ).rowcount
            row = connection.execute(
                select(refresh_tokens).where(refresh_tokens.c.jti_hash == key)
            ).one_or_none()
            if row is None:
                return RefreshUse(RefreshOutcome.UNKNOWN)
            if claimed == 1:
                connection.execute(
                    insert(refresh_tokens).values(
                        jti_hash=digest(successor.jti),
                        family_id=row.family_id,
                        user_id=row.user_id,
                        issued_at=now,
                        expires_at=successor.expires_at,
                        family_started_at=row.family_started_at,
                    )
                )
                return RefreshUse(RefreshOutcome.ACCEPTED, row.family_id, row.user_id)
            outcome = _refusal(row, now, max_session_age)
            if outcome in (RefreshOutcome.REUSED, RefreshOutcome.SESSION_EXPIRED):
                self._revoke(connection, refresh_tokens.c.family_id == row.family_id, now)
            return RefreshUse(outcome, row.family_id, row.user_id)

    def revoke_family(self, family_id: str) -> None:
        with self.engine.begin() as connection:
            self._revoke(connection, refresh_tokens.c.family_id == family_id, utcnow())

    def revoke_user(self, user_id: UUID) -> None:
        """End every refresh family of a user (password reset, deactivation)."""
        with self.engine.begin() as connection:
            self._revoke(connection, refresh_tokens.c.user_id == str(user_id), utcnow())

    @staticmethod
    def _revoke(connection: Connection, condition: Any, now: datetime) -> None:
        connection.execute(
            update(refresh_tokens)
            .where(and_(condition, refresh_tokens.c.revoked_at.is_(None)))
            .values(revoked_at=now)
        )


def _refusal(row: Any, now: datetime, max_session_age: timedelta) -> RefreshOutcome:
    """Why a token that exists was not accepted, the first reason in order of gravity."""
    if row.revoked_at is not None:
        return RefreshOutcome.REVOKED
    if row.used_at is not None:
        return RefreshOutcome.REUSED
    if as_utc(row.family_started_at) <= now - max_session_age:
        return RefreshOutcome.SESSION_EXPIRED
    return RefreshOutcome.EXPIRED

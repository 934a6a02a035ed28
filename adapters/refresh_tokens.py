"""Refresh-token families, stored only as SHA-256 digests of each token's `jti`.

A token is a long random value, so a fast digest is enough (nothing to brute-force) and a
copy of the table cannot be replayed. Each token works once; a reuse revokes its family.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, and_, insert, select, update

from adapters.clock import utcnow
from adapters.digests import digest
from adapters.write_tables import (
    refresh_tokens,
)

log = logging.getLogger(__name__)


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

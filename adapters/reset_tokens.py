"""One-time password-reset tokens, stored only as SHA-256 digests."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from uuid import UUID

from sqlalchemy import Engine, insert, select, update

from adapters.clock import utcnow
from adapters.digests import digest
from adapters.write_tables import (
    password_reset_tokens,
)

log = logging.getLogger(__name__)


class ResetTokenStore:
    """One-time password-reset tokens: the raw value goes out by mail, only a digest stays."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def issue(self, user_id: UUID, *, ttl: timedelta) -> str:
        """A new token for the user; it supersedes (burns) every older open one, so only the
        latest mail's token works and a pile of requests leaves one live token, not many."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        with self.engine.begin() as connection:
            connection.execute(
                update(password_reset_tokens)
                .where(
                    password_reset_tokens.c.user_id == str(user_id),
                    password_reset_tokens.c.used_at.is_(None),
                )
                .values(used_at=now)
            )
            connection.execute(
                insert(password_reset_tokens).values(
                    token_hash=digest(token),
                    user_id=str(user_id),
                    created_at=now,
                    expires_at=now + ttl,
                )
            )
        return token

    def holder(self, token: str) -> UUID | None:
        """The user a valid (unused, unexpired) token is for, without burning it; else None.

        Lets a confirmation refuse a bad token before it pays for hashing the new password.
        """
        with self.engine.connect() as connection:
            user_id = connection.execute(
                select(password_reset_tokens.c.user_id).where(
                    password_reset_tokens.c.token_hash == digest(token),
                    password_reset_tokens.c.used_at.is_(None),
                    password_reset_tokens.c.expires_at > utcnow(),
                )
            ).scalar_one_or_none()
        return None if user_id is None else UUID(user_id)

    def revoke_user(self, user_id: UUID) -> None:
        """Burn every open token of a user: their password or email changed, so a reset
        asked for before (perhaps by whoever read the old mailbox) must not work after."""
        with self.engine.begin() as connection:
            connection.execute(
                update(password_reset_tokens)
                .where(
                    password_reset_tokens.c.user_id == str(user_id),
                    password_reset_tokens.c.used_at.is_(None),
                )
                .values(used_at=utcnow())
            )

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

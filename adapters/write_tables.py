"""The write side's secret tables, beside the event log and never in it.

`credentials` holds password hashes. The others serve authentication (module
`adapters.refresh_tokens`, `adapters.reset_tokens`, `adapters.mail_outbox`,
`adapters.login_throttle`): refresh-token families, one-time password-reset tokens (both
stored only as SHA-256 digests), the mail outbox, and the login-failure counter used when
no Redis is configured. All are created by `bookstore migrate`.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

write_side_metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

credentials = Table(
    "credentials",
    write_side_metadata,
    Column("user_id", String(36), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

refresh_tokens = Table(
    "refresh_tokens",
    write_side_metadata,
    # A digest of the token's `jti`: a leaked table cannot be replayed as tokens.
    Column("jti_hash", String(64), primary_key=True),
    Column("family_id", String(36), nullable=False, index=True),
    Column("user_id", String(36), nullable=False, index=True),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    # When the family's login happened, copied along each rotation: a session has an
    # absolute lifetime, however often it is refreshed.
    Column("family_started_at", DateTime(timezone=True), nullable=False),
)

password_reset_tokens = Table(
    "password_reset_tokens",
    write_side_metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(36), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
)

mail_outbox = Table(
    "mail_outbox",
    write_side_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recipient", String(320), nullable=False, index=True),
    Column("subject", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    # A sender leases a mail before sending it, so two workers never send it twice.
    Column("claimed_until", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
)

login_failures = Table(
    "login_failures",
    write_side_metadata,
    Column("key", String(400), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_started_at", DateTime(timezone=True), nullable=False),
)

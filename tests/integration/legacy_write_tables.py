"""The write-side tables as `create_all` left them, before they had an Alembic history.

Frozen copies of the models at the commits that changed them, so that a later change to
`adapters/write_tables.py` never changes what "an old production database" means here:

- `credentials_only`: the foundation (989f412), `bookstore/credential_store.py` held one table;
- `before_outbox_lease`: the authentication tables (5118944), `mail_outbox` without
  `claimed_until`: mail delivery fails on such a database until it is migrated;
- `before_alembic`: all five tables as `create_all` made them from 2a487de until the
  write-side history replaced it.

None of these databases has the write-side version table.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text


def _metadata() -> MetaData:
    return MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


def _credentials(metadata: MetaData) -> None:
    Table(
        "credentials",
        metadata,
        Column("user_id", String(36), primary_key=True),
        Column("password_hash", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )


def _auth_tables(metadata: MetaData, *, outbox_lease: bool) -> None:
    Table(
        "refresh_tokens",
        metadata,
        Column("jti_hash", String(64), primary_key=True),
        Column("family_id", String(36), nullable=False, index=True),
        Column("user_id", String(36), nullable=False, index=True),
        Column("issued_at", DateTime(timezone=True), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Column("used_at", DateTime(timezone=True), nullable=True),
        Column("revoked_at", DateTime(timezone=True), nullable=True),
    )
    Table(
        "password_reset_tokens",
        metadata,
        Column("token_hash", String(64), primary_key=True),
        Column("user_id", String(36), nullable=False, index=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Column("used_at", DateTime(timezone=True), nullable=True),
    )
    lease = [Column("claimed_until", DateTime(timezone=True), nullable=True)]
    Table(
        "mail_outbox",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("recipient", String(320), nullable=False, index=True),
        Column("subject", String(200), nullable=False),
        Column("body", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("sent_at", DateTime(timezone=True), nullable=True),
        *(lease if outbox_lease else []),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", Text, nullable=True),
    )
    Table(
        "login_failures",
        metadata,
        Column("key", String(400), primary_key=True),
        Column("failures", Integer, nullable=False),
        Column("window_started_at", DateTime(timezone=True), nullable=False),
    )


def credentials_only() -> MetaData:
    metadata = _metadata()
    _credentials(metadata)
    return metadata


def before_outbox_lease() -> MetaData:
    metadata = _metadata()
    _credentials(metadata)
    _auth_tables(metadata, outbox_lease=False)
    return metadata


def before_alembic() -> MetaData:
    metadata = _metadata()
    _credentials(metadata)
    _auth_tables(metadata, outbox_lease=True)
    return metadata


LEGACY_SCHEMAS: dict[str, Callable[[], MetaData]] = {
    "credentials only": credentials_only,
    "before the outbox lease": before_outbox_lease,
    "made by create_all": before_alembic,
}

"""The write side's credentials table: password hashes, beside the event log, never in it."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import Column, DateTime, Engine, MetaData, String, Table, Text, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

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


class SqlCredentialStore:
    """Hashes by user id in the event store's database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    def set_password_hash(self, user_id: UUID, password_hash: str) -> None:
        values = {
            "user_id": str(user_id),
            "password_hash": password_hash,
            "updated_at": datetime.now(UTC),
        }
        statement = self._insert(credentials).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[credentials.c.user_id],
            set_={"password_hash": values["password_hash"], "updated_at": values["updated_at"]},
        )
        with self.engine.begin() as connection:
            connection.execute(statement)

    def get_password_hash(self, user_id: UUID) -> str | None:
        with self.engine.connect() as connection:
            return connection.execute(
                select(credentials.c.password_hash).where(credentials.c.user_id == str(user_id))
            ).scalar_one_or_none()

    def delete(self, user_id: UUID) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(credentials).where(credentials.c.user_id == str(user_id)))

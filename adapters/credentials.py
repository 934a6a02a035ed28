"""Password hashes by user id, in the event store's database (never in the event log)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from adapters.write_tables import credentials

log = logging.getLogger(__name__)


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

    def replace_password_hash(self, user_id: UUID, *, expected: str, new: str | None) -> bool:
        """Compare-and-set in one statement: a hash written meanwhile is never overwritten."""
        row = (credentials.c.user_id == str(user_id)) & (credentials.c.password_hash == expected)
        statement = (
            delete(credentials).where(row)
            if new is None
            else update(credentials)
            .where(row)
            .values(password_hash=new, updated_at=datetime.now(UTC))
        )
        with self.engine.begin() as connection:
            return connection.execute(statement).rowcount == 1

    def delete(self, user_id: UUID) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(credentials).where(credentials.c.user_id == str(user_id)))

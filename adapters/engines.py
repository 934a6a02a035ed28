"""Turning one database URL into what each library wants: SQLAlchemy and eventsourcing."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

# The library's PostgreSQL recorder with bounded statements (resolved by the library from
# this topic, so importing it here would import psycopg for SQLite users too).
BOUNDED_RECORDER_TOPIC = "adapters.event_recorder:BoundedPostgresRecorder"


def is_postgres(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlalchemy_url(url: str) -> str:
    """`postgresql://...` means psycopg 3 here, not SQLAlchemy's default psycopg2."""
    if is_postgres(url):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def sqlite_path(url: str) -> str:
    """The file of a `sqlite:///relative` or `sqlite:////absolute` URL (or ':memory:')."""
    database = make_url(url).database
    return database or ":memory:"


def ensure_sqlite_folder(url: str) -> None:
    """The embedded default keeps its file under ./var/, made on first run."""
    if is_sqlite(url):
        path = sqlite_path(url)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """A SQLAlchemy engine; SQLite gets WAL and a busy timeout so readers never block."""
    ensure_sqlite_folder(url)
    if is_sqlite(url):
        engine = create_engine(
            sqlalchemy_url(url), connect_args={"timeout": 30}, hide_parameters=True
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # hide_parameters: bound values (hashes, token digests) never reach an error message.
    return create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
    )


# Every statement of the event store's connections, the writers' inserts above all, ends
# within this: a stuck one would otherwise hold every projection back (see event_recorder.py).
EVENT_STORE_STATEMENT_TIMEOUT_SECONDS = 30
# The library's own setting for its connections; its lock-free inserts run in autocommit,
# so only a caller's explicit transaction could sit idle in one.
EVENT_STORE_IDLE_IN_TRANSACTION_SECONDS = 60


def event_store_env(
    url: str, *, create_table: bool, pool_size: int = 10, insert_lock: bool = False
) -> dict[str, str]:
    """The eventsourcing settings for a URL: `postgresql://`, `sqlite:///` or `memory://`.

    On PostgreSQL events are inserted without the library's per-insert table lock (its
    `es_insert_events_uuid` function, one autocommit statement per save): projections read
    below a commit watermark instead (`projections/event_log.py`), so they need no lock to
    stay exactly once, and writers no longer queue behind each other. `insert_lock=True`
    restores the library's locked INSERT (kept for the benchmark's before-and-after).
    """
    if url.startswith("memory:"):
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    flag = "y" if create_table else "n"
    if is_sqlite(url):
        ensure_sqlite_folder(url)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": sqlite_path(url),
            "SQLITE_LOCK_TIMEOUT": "30",
            "CREATE_TABLE": flag,
        }
    if is_postgres(url):
        parts = urlsplit(url)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")) or "postgres",
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_POOL_SIZE": str(pool_size),
            "POSTGRES_MAX_OVERFLOW": str(pool_size),
            "POSTGRES_LOCK_TIMEOUT": "10",
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": str(
                EVENT_STORE_IDLE_IN_TRANSACTION_SECONDS
            ),
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n" if insert_lock else "y",
            "APPLICATION_RECORDER_TOPIC": BOUNDED_RECORDER_TOPIC,
            "CREATE_TABLE": flag,
        }
    msg = f"Unsupported event store URL: {url.split('://', 1)[0]}://..."
    raise ValueError(msg)

"""The one place that decides which event store, read database and broker are used."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import redis
from sqlalchemy import Engine

from adapters.credentials import SqlCredentialStore
from adapters.engines import event_store_env, make_engine
from adapters.login_throttle import LoginThrottle, RedisLoginThrottle, SqlLoginThrottle
from adapters.mail_outbox import MailOutbox
from adapters.passwords import PasswordHasher
from adapters.refresh_tokens import RefreshTokenStore
from adapters.reset_tokens import ResetTokenStore
from adapters.smtp_mail import OutboxDrainer
from bookstore.projection_runtime import ProjectionServices
from bookstore.settings import Settings, get_settings
from projections.status import ProjectionStatus
from read_model.positioned_cache import ListingCache
from write_model.application import Bookstore

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"
# Two Alembic histories, each with its own version table: the read tables (read database)
# and the write-side tables (event store's database). The plain command reaches the second
# with `alembic -n write_side` (a section of alembic.ini).
AlembicHistory = Literal["read", "write_side"]
ALEMBIC_HISTORIES: dict[AlembicHistory, Path] = {
    "read": ALEMBIC_DIR,
    "write_side": ALEMBIC_DIR / "write_side",
}


@dataclass
class AuthStore:
    """Everything authentication keeps outside the event log, for one process."""

    refresh_tokens: RefreshTokenStore
    reset_tokens: ResetTokenStore
    outbox: MailOutbox
    throttle: LoginThrottle


def build_login_throttle(settings: Settings, engine: Engine) -> LoginThrottle:
    """Redis when one is configured (shared, expiring keys), else a write-side table.

    Either way every server process shares the counts; the limits themselves are the API's
    policy (`api.security.throttling`), read from the settings.
    """
    redis_url = settings.resolved_redis_url
    if redis_url and redis_url.startswith(("redis://", "rediss://", "unix://")):
        client = redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)
        return RedisLoginThrottle(client)
    return SqlLoginThrottle(engine)


def build_auth_store(settings: Settings, engine: Engine) -> AuthStore:
    return AuthStore(
        refresh_tokens=RefreshTokenStore(engine),
        reset_tokens=ResetTokenStore(engine),
        outbox=MailOutbox(engine),
        throttle=build_login_throttle(settings, engine),
    )


def build_hasher(settings: Settings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.password_hash_time_cost,
        memory_kib=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
    )


@dataclass
class Container:
    """Everything a process (server, worker, CLI) needs, built once and closed once."""

    settings: Settings
    write_app: Bookstore
    write_engine: Engine
    read_engine: Engine
    hasher: PasswordHasher
    _closed: bool = field(default=False, repr=False)
    projections: ProjectionServices = field(init=False, repr=False)
    auth: AuthStore = field(init=False, repr=False)
    mail: OutboxDrainer = field(init=False, repr=False)
    book_pages: ListingCache = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # The runner, the position waiter, and the commit hook that wakes them.
        self.projections = ProjectionServices(self.settings, self.write_app, self.read_engine)
        # Sessions, reset tokens, the outbox and the login throttle: secrets kept beside
        # the event store, in its database.
        self.auth = build_auth_store(self.settings, self.write_engine)
        self.book_pages = ListingCache(self.settings.listing_cache_entries)
        self.mail = OutboxDrainer(
            self.auth.outbox,
            smtp_url=self.settings.smtp_url,
            sender=self.settings.mail_from,
            outbox_is_mailbox=self.settings.outbox_is_mailbox,
        )

    def wake_mail(self) -> None:
        """New mail is in the outbox: have it sent soon (the drainer also polls)."""
        if self.settings.is_embedded:
            self.mail.wake()

    def start(self) -> None:
        """Start the process's background work (in-process projections in embedded mode).

        Called by the server's lifespan. Celery workers and plain CLI commands do not call
        it: with a broker there is nothing to run in the background of this process.
        """
        self.projections.start()
        if self.settings.is_embedded:
            self.mail.start()

    def projection_position(self, name: str) -> int:
        """The store position a projection has processed up to (0 before its first batch)."""
        return self.projections.position(name)

    def wait_for_position(self, name: str, position: int, timeout: float = 5.0) -> bool:
        """Wait (LISTEN/NOTIFY, in-process wake-ups or back-off polling, never a busy loop)
        until projection `name` has processed `position`; False if `timeout` passes first."""
        return self.projections.wait_for(name, position, timeout)

    def projection_statuses(self) -> list[ProjectionStatus]:
        """Position, head, lag, state and last error of every projection."""
        return self.projections.statuses()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.projections.close()
        self.mail.stop()
        self.write_app.close()
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()


def build_write_app(
    settings: Settings, write_engine: Engine, *, create_table: bool = False
) -> Bookstore:
    env = event_store_env(
        settings.resolved_event_store_url,
        create_table=create_table,
        pool_size=settings.postgres_pool_size,
    )
    return Bookstore(env=env, credentials=SqlCredentialStore(write_engine))


def build(settings: Settings | None = None) -> Container:
    """Wire a process. Tables must exist already (`bookstore migrate`)."""
    settings = settings or get_settings()
    write_engine = make_engine(
        settings.resolved_event_store_url, pool_size=settings.postgres_pool_size
    )
    read_engine = (
        write_engine
        if settings.resolved_event_store_url == settings.database_url
        else make_engine(settings.database_url, pool_size=settings.postgres_pool_size)
    )
    return Container(
        settings=settings,
        write_app=build_write_app(settings, write_engine),
        write_engine=write_engine,
        read_engine=read_engine,
        hasher=build_hasher(settings),
    )


def migrate(settings: Settings | None = None) -> None:
    """Create the event-store tables, then bring both Alembic histories to their heads.

    The event store's own tables come from the library (`CREATE_TABLE=y`). The write-side
    tables beside them (credentials, tokens, mail outbox, login failures) have their own
    history, run against the event store's database; the read tables theirs, run against
    the read database. Each history keeps its own version table, so the two may share one
    database (the embedded SQLite file does). The write-side history's first revision also
    completes a database made by the `create_all` this replaced (see its docstring).

    Done once, in one process: several processes creating the event-store tables at
    once crash, so servers and workers always start with table creation off.
    """
    settings = settings or get_settings()
    write_engine = make_engine(settings.resolved_event_store_url, pool_size=2)
    try:
        build_write_app(settings, write_engine, create_table=True).close()
    finally:
        write_engine.dispose()
    run_alembic_upgrade(settings.resolved_event_store_url, history="write_side")
    run_alembic_upgrade(settings.database_url, history="read")


def alembic_config(database_url: str, history: AlembicHistory = "read") -> Config:
    """An Alembic configuration for one history (`read` or `write_side`) and one database.

    `alembic.ini` serves the plain `alembic` command; this builds the same thing in code,
    for `bookstore migrate` and the tests.
    """
    from alembic.config import Config

    from adapters.engines import sqlalchemy_url

    config = Config(ini_section=history)
    config.set_section_option(history, "script_location", str(ALEMBIC_HISTORIES[history]))
    config.attributes["sqlalchemy_url"] = sqlalchemy_url(database_url)
    return config


def run_alembic_upgrade(
    database_url: str, revision: str = "head", *, history: AlembicHistory = "read"
) -> None:
    from adapters.engines import ensure_sqlite_folder
    from alembic import command

    ensure_sqlite_folder(database_url)
    command.upgrade(alembic_config(database_url, history), revision)

"""Both Alembic histories bring any earlier database to a schema equal to the models.

Two histories (`bootstrap.ALEMBIC_HISTORIES`): the read tables (version table
`alembic_version`, read database) and the write-side tables (`alembic_version_write_side`,
the event store's database); on the embedded default both live in one SQLite file. Tests
start from a database in some earlier state (empty, at each earlier revision of either
history, or with the write-side tables as the old `create_all` left them), run
`bookstore migrate`, and compare the database with the models through Alembic's own
autogenerate comparison, the one `alembic check` runs: no difference is allowed. A new
revision joins the parametrisation by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData

from adapters.credentials import SqlCredentialStore
from adapters.engines import make_engine
from adapters.mail_outbox import MailOutbox
from adapters.write_tables import write_side_metadata
from alembic import command
from bookstore import bootstrap
from bookstore.bootstrap import ALEMBIC_HISTORIES, AlembicHistory, alembic_config
from read_model.tables import include_for_dialect
from read_model.tables import metadata as read_metadata
from tests.conftest import make_settings
from tests.integration.legacy_write_tables import LEGACY_SCHEMAS, before_outbox_lease
from tests.services import fresh_postgres_database

HISTORIES: tuple[AlembicHistory, ...] = tuple(ALEMBIC_HISTORIES)
MODELS: dict[AlembicHistory, MetaData] = {"read": read_metadata, "write_side": write_side_metadata}
VERSION_TABLES: dict[AlembicHistory, str] = {
    "read": "alembic_version",
    "write_side": "alembic_version_write_side",
}
WRITE_TABLES = set(write_side_metadata.tables)


def scripts(history: AlembicHistory) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://", history))


def revisions(history: AlembicHistory) -> list[str]:
    """Every revision of a history, oldest first."""
    return [script.revision for script in reversed(list(scripts(history).walk_revisions()))]


def drift(url: str, history: AlembicHistory) -> list[object]:
    """What autogenerate would write to make the database match the models ([] = none)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            tables = MODELS[history].tables

            def only_the_models_tables(name: str | None, type_: str, parents: object) -> bool:
                """A table in the database but not in the models belongs to someone else."""
                return type_ != "table" or name in tables

            options: dict[str, object] = {
                "compare_type": True,
                "include_name": only_the_models_tables,
            }
            if history == "read":  # its PostgreSQL-only indexes
                options["include_object"] = include_for_dialect(connection.dialect.name)
            context = MigrationContext.configure(connection, opts=options)
            return list(compare_metadata(context, MODELS[history]))
    finally:
        engine.dispose()


def current_revisions(url: str, history: AlembicHistory) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": VERSION_TABLES[history]}
            )
            return set(context.get_current_heads())
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def assert_at_head_without_drift(url: str, history: AlembicHistory) -> None:
    assert current_revisions(url, history) == set(scripts(history).get_heads())
    assert drift(url, history) == []


# ------------------------------------------------------------------ earlier states


def at_revision(history: AlembicHistory, revision: str) -> Callable[[str], None]:
    def prepare(url: str) -> None:
        bootstrap.run_alembic_upgrade(url, revision, history=history)

    return prepare


def made_by_the_old_migrate(legacy: Callable[[], MetaData]) -> Callable[[str], None]:
    """What `bookstore migrate` did before the write-side history: the event store's
    tables, `create_all` of the write-side tables of the day, then the read history."""

    def prepare(url: str) -> None:
        engine = make_engine(url)
        try:
            bootstrap.build_write_app(make_settings(url), engine, create_table=True).close()
            legacy().create_all(engine)
        finally:
            engine.dispose()
        bootstrap.run_alembic_upgrade(url, history="read")

    return prepare


def nothing(url: str) -> None:
    del url


STARTING_STATES: dict[str, Callable[[str], None]] = {
    "an empty database": nothing,
    **{
        f"the {history} history at {revision}": at_revision(history, revision)
        for history in HISTORIES
        for revision in revisions(history)[:-1]
    },
    **{
        f"write-side tables {name} and no write-side history": made_by_the_old_migrate(schema)
        for name, schema in LEGACY_SCHEMAS.items()
    },
}


@pytest.fixture
def second_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """Another database of the same kind, for an event store apart from the read side."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'event_store.sqlite3'}"
    else:
        with fresh_postgres_database() as url:
            yield url


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("state", list(STARTING_STATES))
def test_migrate_brings_every_earlier_database_to_exactly_the_models(
    database_url: str, state: str
) -> None:
    STARTING_STATES[state](database_url)

    bootstrap.migrate(make_settings(database_url))

    for history in HISTORIES:
        assert_at_head_without_drift(database_url, history)


def test_a_database_made_before_the_outbox_lease_keeps_its_rows_and_sends_mail_again(
    database_url: str,
) -> None:
    made_by_the_old_migrate(before_outbox_lease)(database_url)
    legacy = before_outbox_lease().tables
    user_id = uuid4()
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                legacy["credentials"]
                .insert()
                .values(user_id=str(user_id), password_hash="$argon2id$old", updated_at=_now())
            )
            queued = connection.execute(
                legacy["mail_outbox"]
                .insert()
                .values(
                    recipient="reader@example.com",
                    subject="Reset your password",
                    body="...",
                    created_at=_now(),
                    attempts=0,
                )
            ).inserted_primary_key
        assert queued is not None
        mail_id = int(queued[0])
        outbox = MailOutbox(engine)
        with pytest.raises(sa.exc.DBAPIError, match="claimed_until"):  # the bug
            outbox.pending()

        bootstrap.migrate(make_settings(database_url))

        assert SqlCredentialStore(engine).get_password_hash(user_id) == "$argon2id$old"
        assert [mail.subject for mail in outbox.pending()] == ["Reset your password"]
        assert outbox.claim(mail_id) is True
        assert outbox.claim(mail_id) is False  # leased: a second sender keeps off
    finally:
        engine.dispose()
    assert_at_head_without_drift(database_url, "write_side")


def test_running_migrate_again_changes_nothing_and_keeps_the_rows(database_url: str) -> None:
    settings = make_settings(database_url)
    bootstrap.migrate(settings)
    user_id = uuid4()
    engine = make_engine(database_url)
    try:
        SqlCredentialStore(engine).set_password_hash(user_id, "$argon2id$kept")
        tables = table_names(database_url)

        bootstrap.migrate(settings)

        assert table_names(database_url) == tables
        assert SqlCredentialStore(engine).get_password_hash(user_id) == "$argon2id$kept"
    finally:
        engine.dispose()
    for history in HISTORIES:
        assert_at_head_without_drift(database_url, history)


@pytest.mark.parametrize("history", HISTORIES)
def test_every_revision_downgrades_and_upgrades_again_to_the_same_schema(
    database_url: str, history: AlembicHistory
) -> None:
    config = alembic_config(database_url, history)
    previous = "base"
    for revision in revisions(history):
        command.upgrade(config, revision)
        command.downgrade(config, previous)
        assert current_revisions(database_url, history) == (
            set() if previous == "base" else {previous}
        )
        command.upgrade(config, revision)
        previous = revision

    assert_at_head_without_drift(database_url, history)
    command.downgrade(config, "base")
    assert table_names(database_url) <= {VERSION_TABLES[history]}


def test_downgrading_one_history_leaves_the_other_and_the_event_store_alone(
    database_url: str,
) -> None:
    bootstrap.migrate(make_settings(database_url))
    everything = table_names(database_url)
    read_tables = set(read_metadata.tables)

    command.downgrade(alembic_config(database_url, "write_side"), "base")

    assert table_names(database_url) == everything - WRITE_TABLES
    assert_at_head_without_drift(database_url, "read")

    bootstrap.run_alembic_upgrade(database_url, history="write_side")
    command.downgrade(alembic_config(database_url, "read"), "base")

    assert table_names(database_url) == everything - read_tables
    assert_at_head_without_drift(database_url, "write_side")


def test_alembic_check_finds_nothing_to_generate_in_either_history(database_url: str) -> None:
    bootstrap.migrate(make_settings(database_url))

    for history in HISTORIES:
        command.check(alembic_config(database_url, history))  # raises on any difference


def test_the_write_side_tables_go_to_the_event_store_database(
    database_url: str, second_database_url: str
) -> None:
    event_store_url = second_database_url

    bootstrap.migrate(make_settings(database_url, event_store_url=event_store_url))

    assert table_names(event_store_url) >= WRITE_TABLES
    assert not WRITE_TABLES & table_names(database_url)
    assert not set(read_metadata.tables) & table_names(event_store_url)
    assert_at_head_without_drift(event_store_url, "write_side")
    assert_at_head_without_drift(database_url, "read")


@pytest.mark.parametrize("history", HISTORIES)
def test_each_history_has_a_single_head(history: AlembicHistory) -> None:
    heads = scripts(history).get_heads()
    assert len(heads) == 1, (
        f"the {history} history has heads {heads}: two revisions name the same "
        "down_revision; point the newer one at the other"
    )


def _now() -> datetime:
    return datetime.now(UTC)

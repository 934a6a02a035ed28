"""Write-side revision ws0003: sessions live before it get their login as their start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from adapters.clock import as_utc
from adapters.digests import digest
from adapters.engines import make_engine
from adapters.refresh_tokens import RefreshOutcome, RefreshTokenStore, Successor
from adapters.write_tables import refresh_tokens
from bookstore import bootstrap
from tests.conftest import make_settings

LOGIN = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _row(jti: str, family: str, issued: datetime, *, used: bool) -> dict[str, object]:
    return {
        "jti_hash": digest(jti),
        "family_id": family,
        "user_id": "0c3f8a7e-0000-4000-8000-000000000001",
        "issued_at": issued,
        "expires_at": datetime.now(UTC) + timedelta(days=7),
        "used_at": issued + timedelta(days=1) if used else None,
        "revoked_at": None,
    }


def test_rows_of_before_get_their_family_s_first_issue_as_its_start(database_url: str) -> None:
    bootstrap.run_alembic_upgrade(database_url, "ws0002", history="write_side")
    before = sa.table(
        "refresh_tokens",
        *(sa.column(name) for name in _row("x", "f", LOGIN, used=False)),
    )
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                before.insert(),
                [
                    _row("first", "family-a", LOGIN, used=True),
                    _row("second", "family-a", LOGIN + timedelta(days=6), used=False),
                    _row("other", "family-b", LOGIN + timedelta(days=2), used=False),
                ],
            )

        bootstrap.migrate(make_settings(database_url))

        with engine.connect() as connection:
            starts = dict(
                connection.execute(
                    sa.select(refresh_tokens.c.family_id, refresh_tokens.c.family_started_at)
                ).all()
            )
        assert {family: as_utc(start) for family, start in starts.items()} == {
            "family-a": LOGIN,
            "family-b": LOGIN + timedelta(days=2),
        }
        store = RefreshTokenStore(engine)
        successor = Successor(jti="third", expires_at=datetime.now(UTC) + timedelta(days=7))
        # The session of family a began long ago: past a short lifetime, it is over ...
        assert (
            store.rotate("second", successor, max_session_age=timedelta(days=1)).outcome
            is RefreshOutcome.SESSION_EXPIRED
        )
        # ... and within the default one, family b rotates as before.
        assert (
            store.rotate("other", successor, max_session_age=timedelta(days=3650)).outcome
            is RefreshOutcome.ACCEPTED
        )
    finally:
        engine.dispose()

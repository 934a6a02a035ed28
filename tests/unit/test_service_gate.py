"""A test whose service is missing is skipped with directions outside CI, and fails in CI."""

from __future__ import annotations

import pytest

from tests import services


@pytest.fixture
def dead_services(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:1/x")
    monkeypatch.setattr(services, "REDIS_URL", "redis://127.0.0.1:1")


@pytest.mark.usefixtures("dead_services")
@pytest.mark.parametrize("opener", [services.fresh_postgres_database, services.fresh_redis_db])
def test_a_missing_service_skips_with_directions_outside_ci(
    monkeypatch: pytest.MonkeyPatch, opener: object
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with (
        pytest.raises(pytest.skip.Exception, match="to run these tests, start PostgreSQL"),
        opener(),  # type: ignore[operator]
    ):
        pass


@pytest.mark.usefixtures("dead_services")
@pytest.mark.parametrize("opener", [services.fresh_postgres_database, services.fresh_redis_db])
def test_a_missing_service_fails_in_ci(monkeypatch: pytest.MonkeyPatch, opener: object) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="is not reachable"), opener():  # type: ignore[operator]
        pass

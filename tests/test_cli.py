"""`bookstore users create-admin`: the only way the first admin is made."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from bookstore import bootstrap
from bookstore.cli import app as cli
from bookstore.settings import get_settings
from tests.factories import ctx
from write_model.values import Role

runner = CliRunner()


@pytest.fixture
def database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated SQLite database that the CLI finds through BOOKSTORE_DATABASE_URL."""
    monkeypatch.setenv("BOOKSTORE_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("BOOKSTORE_EVENT_STORE_URL", raising=False)
    monkeypatch.setenv("BOOKSTORE_ENV", "development")
    monkeypatch.setenv("BOOKSTORE_PASSWORD_HASH_TIME_COST", "1")
    monkeypatch.setenv("BOOKSTORE_PASSWORD_HASH_MEMORY_KIB", "8192")
    monkeypatch.setenv("BOOKSTORE_PASSWORD_HASH_PARALLELISM", "1")
    get_settings.cache_clear()
    result = runner.invoke(cli, ["migrate"])
    assert result.exit_code == 0, result.output
    yield sqlite_url
    get_settings.cache_clear()


def create_admin(email: str, password: str = "correct horse") -> tuple[int, str]:
    result = runner.invoke(cli, ["users", "create-admin", "--email", email, "--password", password])
    return result.exit_code, result.output


def test_a_new_email_is_created_as_an_active_admin_with_its_password(database: str) -> None:
    code, output = create_admin("Boss@Example.com")

    assert code == 0, output
    assert output.startswith("created: admin boss@example.com (id ")
    container = bootstrap.build(get_settings())
    try:
        user = container.write_app.find_user_by_email("boss@example.com")
        assert user is not None
        assert (user.role, user.is_active) == (Role.ADMIN, True)
        assert str(user.id) in output
        stored = container.write_app.password_hash_of(user.id)
        assert container.hasher.verify("correct horse", stored)
    finally:
        container.close()


def test_running_it_again_for_the_same_admin_says_unchanged(database: str) -> None:
    assert create_admin("boss@example.com")[0] == 0
    code, output = create_admin("BOSS@example.com", password="another password")
    assert code == 0, output
    assert output.startswith("unchanged: admin boss@example.com")
    container = bootstrap.build(get_settings())
    try:
        user = container.write_app.find_user_by_email("boss@example.com")
        assert user is not None
        stored = container.write_app.password_hash_of(user.id)
        assert container.hasher.verify("correct horse", stored)  # the password is left alone
    finally:
        container.close()


def test_an_existing_customer_is_promoted(database: str) -> None:
    container = bootstrap.build(get_settings())
    try:
        customer_id = container.write_app.register_user(
            ctx(), email="clerk@example.com", password_hash=container.hasher.hash("clerk pass")
        ).id
    finally:
        container.close()

    code, output = create_admin("clerk@example.com")

    assert code == 0, output
    assert output.startswith(f"promoted: admin clerk@example.com (id {customer_id})")
    container = bootstrap.build(get_settings())
    try:
        assert container.write_app.get_user(customer_id).role is Role.ADMIN
    finally:
        container.close()


def test_a_password_shorter_than_8_characters_is_refused(database: str) -> None:
    code, output = create_admin("boss@example.com", password="short")

    assert code != 0
    assert "8..128 characters" in output
    container = bootstrap.build(get_settings())
    try:
        assert container.write_app.find_user_by_email("boss@example.com") is None
    finally:
        container.close()

"""Settings refuse a secret key that would let anyone forge tokens, outside development."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bookstore.settings import DEV_SECRET, Settings


@pytest.mark.parametrize("env", ["test", "production"])
@pytest.mark.parametrize("secret", [DEV_SECRET, "changeme", "short-but-random-9f3a"])
def test_a_placeholder_or_short_secret_is_refused_outside_development(
    env: str, secret: str
) -> None:
    with pytest.raises(ValidationError, match="BOOKSTORE_SECRET_KEY"):
        Settings(env=env, secret_key=secret)  # type: ignore[arg-type]


def test_development_runs_on_the_placeholder_so_the_quick_start_needs_no_setup() -> None:
    settings = Settings(env="development")
    assert settings.secret_key.get_secret_value() == DEV_SECRET
    assert settings.is_embedded


def test_a_random_secret_is_accepted_in_production() -> None:
    secret = "Zq4w" * 12
    settings = Settings(env="production", secret_key=secret)  # type: ignore[arg-type]
    assert settings.secret_key.get_secret_value() == secret
    assert secret not in repr(settings)

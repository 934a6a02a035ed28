"""One pydantic-settings `Settings`, read from `BOOKSTORE_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Long enough for HS256 (no key-length warning), and refused outside development.
DEV_SECRET = "dev-insecure-secret-refused-outside-development"  # noqa: S105
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", DEV_SECRET})


class Settings(BaseSettings):
    """Everything that differs between a laptop, CI and production."""

    model_config = SettingsConfigDict(env_prefix="BOOKSTORE_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///var/bookstore.sqlite3"
    event_store_url: str | None = Field(
        default=None, description="Defaults to database_url: one database holds both sides."
    )
    broker_url: str | None = Field(
        default=None, description="Redis URL for Celery; unset runs projections in-process."
    )
    secret_key: SecretStr = SecretStr(DEV_SECRET)
    access_token_ttl_seconds: int = Field(default=15 * 60, ge=30)
    refresh_token_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    session_max_lifetime_seconds: int = Field(
        default=30 * 24 * 3600,
        ge=60,
        description="How long a session may go on from its login, however often it is "
        "refreshed; then the refresh fails and the user logs in again.",
    )
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=64 * 1024, ge=8 * 1024)
    password_hash_parallelism: int = Field(default=2, ge=1)
    token_algorithm: Literal["HS256", "HS384", "HS512"] = Field(
        default="HS256", description="The one JWT algorithm accepted; every other is refused."
    )
    token_issuer: str = "bookstore"  # noqa: S105 (a name, not a secret)
    token_audience: str = "bookstore-api"  # noqa: S105
    password_reset_ttl_seconds: int = Field(default=30 * 60, ge=60)
    login_max_failures: int = Field(
        default=10,
        ge=1,
        description="Failed password checks per (account, client address) in a window; "
        "then that address gets 429 for that account. Also counts wrong current_password.",
    )
    login_max_failures_per_account: int = Field(
        default=50,
        ge=1,
        description="Failed checks per account, from all addresses, in a window; past it an "
        "address that has failed against the account is refused, and a clean one (the "
        "owner's) still gets one try.",
    )
    login_max_failures_per_address: int = Field(
        default=100,
        ge=1,
        description="Failed checks per client address (IPv6: per /64), on all accounts, "
        "in a window; past it that address gets 429 for every account.",
    )
    login_failure_window_seconds: int = Field(
        default=15 * 60, ge=1, description="The window of the three login limits."
    )
    password_reset_max_per_address: int = Field(
        default=10, ge=1, description="Reset requests per client address in a window (429)."
    )
    password_reset_max_per_email: int = Field(
        default=3,
        ge=1,
        description="Reset mails per email in a window; further requests still answer 202 "
        "but send nothing (the latest mail's token stays good).",
    )
    password_reset_window_seconds: int = Field(default=3600, ge=1)
    password_reset_confirm_max_per_address: int = Field(
        default=10, ge=1, description="Reset confirmations per client address in a window."
    )
    password_reset_confirm_window_seconds: int = Field(default=15 * 60, ge=1)
    register_max_per_address: int = Field(
        default=20, ge=1, description="Registrations per client address in a window."
    )
    register_window_seconds: int = Field(default=3600, ge=1)
    forwarded_allow_ips: str = Field(
        default="127.0.0.1,::1",
        description="Proxies (addresses or networks, comma-separated) whose X-Forwarded-For "
        "names the client; `bookstore serve --forwarded-allow-ips` overrides it.",
    )
    redis_url: str | None = Field(
        default=None, description="Redis for the login throttle; defaults to broker_url."
    )
    mail_from: str = "Bookstore <no-reply@bookstore.example>"
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    metrics_token: SecretStr | None = None
    smtp_url: str | None = None
    postgres_pool_size: int = Field(default=10, ge=1)
    projection_batch_size: int = Field(
        default=500, ge=1, description="Events per catch-up transaction."
    )
    projection_idle_timeout_seconds: int = Field(
        default=600,
        ge=1,
        description="idle_in_transaction_session_timeout of a catch-up transaction "
        "(the server's default may kill a slow batch half way).",
    )
    listing_cache_entries: int = Field(
        default=4096,
        ge=0,
        description="Pages of GET /books (and their totals) each server process keeps while "
        "book_listing stands still; 0 reads every page afresh.",
    )

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        """A placeholder key would let anyone forge tokens: refuse it outside development."""
        if self.env != "development" and self.has_placeholder_secret:
            msg = (
                "BOOKSTORE_SECRET_KEY must be set to a random value of 32+ characters "
                f"when BOOKSTORE_ENV={self.env}"
            )
            raise ValueError(msg)
        return self

    @property
    def has_placeholder_secret(self) -> bool:
        """The key is the built-in development one, a known placeholder, or too short:
        anyone could sign tokens with it (`bookstore serve` keeps it to loopback)."""
        key = self.secret_key.get_secret_value()
        return key.strip().lower() in PLACEHOLDER_SECRETS or len(key) < 32

    @property
    def resolved_event_store_url(self) -> str:
        return self.event_store_url or self.database_url

    @property
    def resolved_redis_url(self) -> str | None:
        """The throttle's Redis: its own setting, else the broker's, else none (SQL table)."""
        return self.redis_url or self.broker_url

    @property
    def outbox_is_mailbox(self) -> bool:
        """With no SMTP server outside production, mail is read from the outbox itself.

        There `bookstore mail outbox` shows it, so it counts as delivered once queued. In
        production, unsent mail stays queued until an SMTP server is configured.
        """
        return not self.smtp_url and self.env != "production"

    @property
    def is_embedded(self) -> bool:
        """No broker: projections run in-process after each commit."""
        return not self.broker_url


@lru_cache
def get_settings() -> Settings:
    return Settings()

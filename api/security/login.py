"""Logging in: an email and a password in, a new session (token pair) out.

Login gives the same 401 for an unknown email and a wrong password, and takes the same
time for both: an unknown email is verified against a dummy hash. Failed logins are
counted by the login throttle; every call to it is in the three `_throttle_*` functions
below, so the throttling rules can change without touching the login itself.
"""

from __future__ import annotations

import logging
import unicodedata

from fastapi import Request

from adapters.login_throttle import LoginThrottle
from adapters.passwords import PasswordHasher
from adapters.refresh_tokens import RefreshTokenStore
from api.deps import BEARER
from api.problems import ProblemError
from api.security.sessions import TokenPair, open_session
from api.security.tokens import TokenCodec
from write_model.application import Bookstore
from write_model.user import User

log = logging.getLogger(__name__)


def client_host(request: Request) -> str:
    """The address the request came from, as the server saw it."""
    return request.client.host if request.client else "unknown"


# ------------------------------------------------------------------ throttling


def _throttle_keys(email: str, client: str) -> list[str]:
    return [f"email:{email.strip().lower()}", f"ip:{client}"]


def _throttle_check(throttle: LoginThrottle, email: str, client: str) -> None:
    """429 with Retry-After while this email or address has too many recent failures."""
    retry_after = throttle.retry_after(_throttle_keys(email, client))
    if retry_after is not None:
        raise ProblemError(
            "login-throttled",
            f"Too many failed logins; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


def _throttle_failure(throttle: LoginThrottle, email: str, client: str) -> None:
    """Count a wrong password (or an unknown email) against the email and the address."""
    throttle.record_failure(_throttle_keys(email, client))


def _throttle_success(throttle: LoginThrottle, email: str, client: str) -> None:
    """The owner proved the password: their email's failures are forgotten."""
    throttle.reset(_throttle_keys(email, client)[0])


# ------------------------------------------------------------------ login


def _upgrade_hash(app: Bookstore, hasher: PasswordHasher, user: User, password: str) -> None:
    """An old bcrypt hash (or weaker argon2 parameters): upgrade while we hold the password."""
    app.rehash_password(user.id, hasher.hash(password))
    log.info("password hash of user %s upgraded", user.id)


def log_in(
    *,
    email: str,
    password: str,
    client: str,
    app: Bookstore,
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    refresh_tokens: RefreshTokenStore,
    codec: TokenCodec,
) -> TokenPair:
    """A new session for the owner of `email`, or a 401 (429 when throttled)."""
    # Registration stores the NFC form (the email validator normalises it): a client
    # sending "jo\u0308rg@..." (NFD, as some keyboards do) means the same address.
    email = unicodedata.normalize("NFC", email)
    _throttle_check(throttle, email, client)
    user = app.find_user_by_email(email)
    stored = app.password_hash_of(user.id) if user is not None else None
    # With no user, `verify` checks a dummy hash: both failures take the same time.
    verified = hasher.verify(password, stored)
    if user is None or stored is None or not verified or not user.is_active:
        if not verified:
            _throttle_failure(throttle, email, client)
        raise ProblemError("invalid-credentials", headers=BEARER)
    _throttle_success(throttle, email, client)
    if hasher.needs_update(stored):
        _upgrade_hash(app, hasher, user, password)
    return open_session(user=user, refresh_tokens=refresh_tokens, codec=codec)

"""Logging in: an email and a password in, a new session (token pair) out.

Login gives the same 401 for an unknown email and a wrong password, and takes the same
time for both: an unknown email is verified against a dummy hash. Each password check is
reserved with the throttle before it is made (`api.security.throttling` holds the rules):
past a limit the answer is 429 with Retry-After, and the right password hands it back.
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
from api.security.throttling import client_address, reserve_password_guess
from api.security.tokens import TokenCodec
from bookstore.settings import Settings
from write_model.application import Bookstore
from write_model.user import User

log = logging.getLogger(__name__)


def client_host(request: Request) -> str:
    """The address the request is counted under (IPv6 per /64; see `api.security.throttling`)."""
    return client_address(request)


# ------------------------------------------------------------------ login


def _upgrade_hash(
    app: Bookstore, hasher: PasswordHasher, user: User, password: str, verified_hash: str
) -> None:
    """An old bcrypt hash (or weaker argon2 parameters): upgrade while we hold the password.

    Only over the very hash just verified: a password change or reset may land while this
    slow hash is computed, and its new hash must stay (the old password must not return).
    """
    if app.rehash_password(user.id, hasher.hash(password), replacing=verified_hash):
        log.info("password hash of user %s upgraded", user.id)
    else:
        log.info("password hash of user %s changed meanwhile: upgrade dropped", user.id)


def log_in(
    *,
    email: str,
    password: str,
    client: str,
    app: Bookstore,
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    settings: Settings,
    refresh_tokens: RefreshTokenStore,
    codec: TokenCodec,
) -> TokenPair:
    """A new session for the owner of `email`, or a 401 (429 when throttled)."""
    # Registration stores the NFC form (the email validator normalises it): a client
    # sending "jo\u0308rg@..." (NFD, as some keyboards do) means the same address.
    email = unicodedata.normalize("NFC", email)
    guess = reserve_password_guess(throttle, settings, email=email, address=client)
    user = app.find_user_by_email(email)
    stored = app.password_hash_of(user.id) if user is not None else None
    # With no user, `verify` checks a dummy hash: both failures take the same time.
    verified = hasher.verify(password, stored)
    if verified:
        guess.succeeded()  # the right password is no failure, even for a deactivated user
    if user is None or stored is None or not verified or not user.is_active:
        raise ProblemError("invalid-credentials", headers=BEARER)
    if hasher.needs_update(stored):
        _upgrade_hash(app, hasher, user, password, stored)
    return open_session(user=user, refresh_tokens=refresh_tokens, codec=codec)

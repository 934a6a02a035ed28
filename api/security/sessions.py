"""Sessions: a login opens a refresh-token family; each refresh rotates within it.

A refresh token works once. Presenting one that was already used means two parties hold
it (one of them a thief), so the whole family is revoked and both must log in again.
Every refresh also checks the user afresh: deactivated, or a password changed since
(session version moved on), and the family ends.

The functions take the stores they use, not the process's container, so a route passes
its narrow dependencies through and a test can call them with any store.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from adapters.refresh_tokens import RefreshTokenStore
from api.security.tokens import InvalidTokenError, TokenCodec
from write_model.application import Bookstore
from write_model.errors import NotFoundError
from write_model.user import User

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class RefreshRefusedError(Exception):
    """The refresh token is not (or no longer) good; the message is for logs only."""


def _issue(
    refresh_tokens: RefreshTokenStore, codec: TokenCodec, user: User, family_id: str
) -> TokenPair:
    refresh = codec.refresh_token(user.id, user.session_version, family_id)
    refresh_tokens.record(
        jti=refresh.jti, family_id=family_id, user_id=user.id, expires_at=refresh.expires_at
    )
    return TokenPair(
        access_token=codec.access_token(user.id, user.session_version),
        refresh_token=refresh.token,
        expires_in=int(codec.access_ttl.total_seconds()),
    )


def open_session(*, user: User, refresh_tokens: RefreshTokenStore, codec: TokenCodec) -> TokenPair:
    """Tokens for a user who just proved who they are: a new family."""
    return _issue(refresh_tokens, codec, user, uuid.uuid4().hex)


def rotate(
    *,
    refresh_token: str,
    app: Bookstore,
    refresh_tokens: RefreshTokenStore,
    codec: TokenCodec,
) -> TokenPair:
    """Trade a refresh token for a new pair in the same family, exactly once."""
    try:
        claims = codec.decode_refresh(refresh_token)
    except InvalidTokenError as error:
        raise RefreshRefusedError(str(error)) from None
    use = refresh_tokens.use(claims.jti)
    if use.outcome != "accepted":
        if use.outcome == "reused":
            log.warning(
                "refresh token reused: family %s of user %s revoked", use.family_id, use.user_id
            )
        raise RefreshRefusedError(f"refresh token {use.outcome}")
    family_id = use.family_id or claims.family_id
    try:
        user = app.get_user(claims.user_id)
    except NotFoundError:
        refresh_tokens.revoke_family(family_id)
        raise RefreshRefusedError("user not found") from None
    if not user.is_active or user.session_version != claims.session_version:
        refresh_tokens.revoke_family(family_id)
        raise RefreshRefusedError("user deactivated or sessions ended")
    return _issue(refresh_tokens, codec, user, family_id)

"""Sessions: a login opens a refresh-token family; each refresh rotates within it.

A refresh token works once. Presenting one that was already used means two parties hold
it (one of them a thief), so the whole family is revoked, the user's session version moves
on (ending the access tokens already out), and both must log in again. Every refresh also
checks the user afresh: deactivated, or a password changed since (session version moved
on), and the family ends. A session lasts at most `session_max_lifetime_seconds` (30 days
by default) from its login, however often it is refreshed.

The functions take the stores they use, not the process's container, so a route passes
its narrow dependencies through and a test can call them with any store.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from adapters.refresh_tokens import RefreshOutcome, RefreshTokenStore, Successor
from api.security.tokens import InvalidTokenError, IssuedRefresh, RefreshClaims, TokenCodec
from write_model.application import Bookstore
from write_model.context import CommandContext
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


def _pair(codec: TokenCodec, user: User, refresh: IssuedRefresh) -> TokenPair:
    return TokenPair(
        access_token=codec.access_token(user.id, user.session_version),
        refresh_token=refresh.token,
        expires_in=int(codec.access_ttl.total_seconds()),
    )


def open_session(*, user: User, refresh_tokens: RefreshTokenStore, codec: TokenCodec) -> TokenPair:
    """Tokens for a user who just proved who they are: a new family."""
    refresh = codec.refresh_token(user.id, user.session_version, uuid.uuid4().hex)
    refresh_tokens.record(
        jti=refresh.jti,
        family_id=refresh.family_id,
        user_id=user.id,
        expires_at=refresh.expires_at,
    )
    return _pair(codec, user, refresh)


def _current_user(app: Bookstore, claims: RefreshClaims) -> User:
    """The token's user as they are now, if the token's session may still go on."""
    try:
        user = app.get_user(claims.user_id)
    except NotFoundError:
        raise RefreshRefusedError("user not found") from None
    if not user.is_active or user.session_version != claims.session_version:
        raise RefreshRefusedError("user deactivated or sessions ended")
    return user


def rotate(
    *,
    refresh_token: str,
    ctx: CommandContext,
    app: Bookstore,
    refresh_tokens: RefreshTokenStore,
    codec: TokenCodec,
) -> TokenPair:
    """Trade a refresh token for a new pair in the same family, exactly once.

    A token presented twice means two parties hold it: the family is revoked (by the store,
    in the same step that found the reuse) and the user's session version moves on, so the
    access tokens already handed out, the thief's or the owner's, stop working too.
    """
    try:
        claims = codec.decode_refresh(refresh_token)
    except InvalidTokenError as error:
        raise RefreshRefusedError(str(error)) from None
    try:
        user = _current_user(app, claims)
    except RefreshRefusedError:
        refresh_tokens.revoke_family(claims.family_id)
        raise
    successor = codec.refresh_token(user.id, user.session_version, claims.family_id)
    use = refresh_tokens.rotate(
        claims.jti,
        Successor(jti=successor.jti, expires_at=successor.expires_at),
        max_session_age=codec.session_lifetime,
    )
    if use.outcome is RefreshOutcome.REUSED:
        log.warning("refresh token reused: family %s of user %s revoked", use.family_id, user.id)
        app.end_sessions(ctx, user.id)
    if use.outcome is not RefreshOutcome.ACCEPTED:
        raise RefreshRefusedError(f"refresh token {use.outcome}")
    return _pair(codec, user, successor)

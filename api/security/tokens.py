"""JWT access and refresh tokens (PyJWT), verified strictly.

Strict means: the one configured HMAC algorithm is accepted and every other refused before
the signature is even looked at (so `alg: none` and HS/RS confusion cannot work), and
`exp`, `iat`, `iss`, `aud`, `sub`, `jti`, `typ` and `sv` must all be present and right. The
`typ` claim keeps a refresh token from being used as an access token and the other way
round. `sv` is the user's session version: a password change moves it on, which ends every
token issued before.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import jwt
from pydantic import SecretStr

from bookstore.settings import Settings

ACCESS = "access"
REFRESH = "refresh"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti", "typ", "sv"]


class InvalidTokenError(Exception):
    """The token cannot be trusted; the message says why (for logs, not for clients)."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: UUID
    session_version: int


@dataclass(frozen=True)
class RefreshClaims:
    user_id: UUID
    session_version: int
    jti: str
    family_id: str


@dataclass(frozen=True)
class IssuedRefresh:
    token: str
    jti: str
    family_id: str
    expires_at: datetime


class TokenCodec:
    """Signs and verifies this API's tokens with the server's secret key."""

    def __init__(
        self,
        *,
        secret: SecretStr,
        algorithm: str,
        issuer: str,
        audience: str,
        access_ttl: timedelta,
        refresh_ttl: timedelta,
        session_lifetime: timedelta = timedelta(days=30),
    ) -> None:
        self._secret = secret
        self.algorithm = algorithm
        self.issuer = issuer
        self.audience = audience
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        # How long a session (a refresh family) may go on from its login, however refreshed.
        self.session_lifetime = session_lifetime

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenCodec:
        return cls(
            secret=settings.secret_key,
            algorithm=settings.token_algorithm,
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            access_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
            refresh_ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
            session_lifetime=timedelta(seconds=settings.session_max_lifetime_seconds),
        )

    def _encode(self, claims: dict[str, Any], ttl: timedelta, now: datetime) -> str:
        payload = {
            **claims,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "jti": claims.get("jti") or uuid.uuid4().hex,
        }
        return jwt.encode(payload, self._secret.get_secret_value(), algorithm=self.algorithm)

    def access_token(self, user_id: UUID, session_version: int) -> str:
        claims = {"sub": str(user_id), "typ": ACCESS, "sv": session_version}
        return self._encode(claims, self.access_ttl, datetime.now(UTC))

    def refresh_token(self, user_id: UUID, session_version: int, family_id: str) -> IssuedRefresh:
        now = datetime.now(UTC)
        jti = uuid.uuid4().hex
        claims = {
            "sub": str(user_id),
            "typ": REFRESH,
            "sv": session_version,
            "fam": family_id,
            "jti": jti,
        }
        token = self._encode(claims, self.refresh_ttl, now)
        return IssuedRefresh(
            token=token, jti=jti, family_id=family_id, expires_at=now + self.refresh_ttl
        )

    def _decode(self, token: str, expected_type: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret.get_secret_value(),
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS, "verify_signature": True},
            )
        except jwt.PyJWTError as error:
            raise InvalidTokenError(f"{type(error).__name__}: {error}") from None
        if claims.get("typ") != expected_type:
            raise InvalidTokenError(f"a {claims.get('typ')!r} token where {expected_type} is due")
        version = claims.get("sv")
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise InvalidTokenError("bad session version")
        try:
            claims["sub"] = UUID(str(claims["sub"]))
        except ValueError:
            raise InvalidTokenError("subject is not a user id") from None
        return claims

    def decode_access(self, token: str) -> AccessClaims:
        claims = self._decode(token, ACCESS)
        return AccessClaims(user_id=claims["sub"], session_version=claims["sv"])

    def decode_refresh(self, token: str) -> RefreshClaims:
        claims = self._decode(token, REFRESH)
        family = claims.get("fam")
        if not isinstance(family, str) or not family:
            raise InvalidTokenError("refresh token without a family")
        return RefreshClaims(
            user_id=claims["sub"],
            session_version=claims["sv"],
            jti=str(claims["jti"]),
            family_id=family,
        )

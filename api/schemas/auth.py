"""Authentication bodies: credentials in, tokens out."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, EmailStr, Field

from api.schemas.text import OneLineText, Text
from api.schemas.users import PASSWORD_MAX, PASSWORD_MIN
from api.security.sessions import TokenPair


class LoginRequest(BaseModel):
    """JSON login. Any one-line string is taken as the email: a malformed one is just unknown
    (401); one with control characters (NUL, which no database text column takes) is 422."""

    email: OneLineText = Field(min_length=1, max_length=320)
    password: Text = Field(min_length=1, max_length=PASSWORD_MAX)


class LoginForm(BaseModel):
    """The OAuth2 password-flow form (what the docs' Authorize button posts)."""

    username: OneLineText = Field(min_length=1, max_length=320, description="Your email.")
    password: Text = Field(min_length=1, max_length=PASSWORD_MAX)
    grant_type: Literal["password"] | None = None
    scope: Text = ""


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a scheme name)
    expires_in: int = Field(description="Seconds until the access token expires.")

    @classmethod
    def of(cls, pair: TokenPair) -> TokenResponse:
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
        )


class RefreshRequest(BaseModel):
    refresh_token: Text = Field(min_length=1, max_length=4096)


class PasswordResetRequest(BaseModel):
    email: EmailStr


class PasswordResetConfirm(BaseModel):
    token: Text = Field(min_length=1, max_length=512)
    new_password: Text = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    detail: str

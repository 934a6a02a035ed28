"""User bodies. `UserPublic` is all a client ever sees of a user: never a hash."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from api.schemas.text import NO_CONTROL_CHARACTERS, OneLineText, Text
from write_model.user import FULL_NAME_MAX, User
from write_model.values import Role

PASSWORD_MIN = 8
PASSWORD_MAX = 128
# Any page beyond this is empty anyway; the cap keeps OFFSET within every database's range.
MAX_OFFSET = 2**31 - 1

# NO_CONTROL_CHARACTERS and OneLineText are re-exported: routers take them from here.
__all__ = [
    "MAX_OFFSET",
    "NO_CONTROL_CHARACTERS",
    "PASSWORD_MAX",
    "PASSWORD_MIN",
    "ActiveChange",
    "OneLineText",
    "RoleChange",
    "UserPage",
    "UserPublic",
    "UserRegister",
    "UserUpdateMe",
]


class UserPublic(BaseModel):
    id: UUID
    email: str
    full_name: str
    role: Role
    is_active: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserPublic:
        return cls(
            id=user.id,
            email=user.email,
            full_name=user.full_name,
            role=user.role,
            is_active=user.is_active,
            created_at=user.created_on,
        )

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> UserPublic:
        return cls.model_validate(row, from_attributes=False)


class UserRegister(BaseModel):
    model_config = ConfigDict(extra="ignore")

    email: EmailStr
    password: Text = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)
    full_name: OneLineText = Field(default="", max_length=FULL_NAME_MAX)


class UserUpdateMe(BaseModel):
    """Any subset; a new email or password needs the current password."""

    email: EmailStr | None = None
    full_name: OneLineText | None = Field(default=None, max_length=FULL_NAME_MAX)
    new_password: Text | None = Field(
        default=None, min_length=PASSWORD_MIN, max_length=PASSWORD_MAX
    )
    current_password: Text | None = Field(default=None, max_length=PASSWORD_MAX)


class RoleChange(BaseModel):
    role: Role


class ActiveChange(BaseModel):
    # Strict: a JSON `true` or `false` only. Lax, `0`, `"no"` or `"false"` deactivated a
    # user, a mistake (or a fuzzer) passing as a decision.
    is_active: bool = Field(strict=True)


class UserPage(BaseModel):
    items: list[UserPublic]
    total: int
    limit: int
    offset: int

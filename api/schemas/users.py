"""User bodies. `UserPublic` is all a client ever sees of a user: never a hash."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from write_model.user import FULL_NAME_MAX, User
from write_model.values import Role

PASSWORD_MIN = 8
PASSWORD_MAX = 128
# Any page beyond this is empty anyway; the cap keeps OFFSET within every database's range.
MAX_OFFSET = 2**31 - 1
# Names and search strings are one line of text: no NUL (PostgreSQL refuses it in text),
# no other C0 control character, no DEL.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]*$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        msg = "must not contain control characters (such as NUL, tab or newline)"
        raise ValueError(msg)
    return value


# A validator (for a clear message) plus the pattern (so the OpenAPI schema says it too).
OneLineText = Annotated[
    str,
    AfterValidator(_no_control_characters),
    Field(json_schema_extra={"pattern": NO_CONTROL_CHARACTERS}),
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
    password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)
    full_name: OneLineText = Field(default="", max_length=FULL_NAME_MAX)


class UserUpdateMe(BaseModel):
    """Any subset; a new email or password needs the current password."""

    email: EmailStr | None = None
    full_name: OneLineText | None = Field(default=None, max_length=FULL_NAME_MAX)
    new_password: str | None = Field(default=None, min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)
    current_password: str | None = Field(default=None, max_length=PASSWORD_MAX)


class RoleChange(BaseModel):
    role: Role


class ActiveChange(BaseModel):
    is_active: bool


class UserPage(BaseModel):
    items: list[UserPublic]
    total: int
    limit: int
    offset: int

"""/users: a user's own account, and the admin's view and control of everyone's.

`/users/me` is read from the write model (always current: a user never misses their own
change); the admin list comes from the `user_directory` projection.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from api.deps import (
    AdminUser,
    AppSettings,
    CurrentUser,
    Hasher,
    JsonBody,
    ReadConnection,
    RefreshTokens,
    ResetTokens,
    Throttle,
    WriteApp,
    command_context,
    projection_caught_up,
)
from api.problems import ProblemError, problem_responses
from api.schemas.users import (
    MAX_OFFSET,
    NO_CONTROL_CHARACTERS,
    ActiveChange,
    RoleChange,
    UserPage,
    UserPublic,
    UserUpdateMe,
)
from api.security.throttling import client_address, reserve_password_guess
from read_model.users import list_users
from write_model.errors import DuplicateKeyError
from write_model.values import Role, normalise_email

router = APIRouter(prefix="/users", tags=["users"])

EVENT_POSITION = {"X-Event-Position": {"description": "Store position of the last event."}}
AUTH_ERRORS = {401: "Missing, invalid or expired token, or the account is deactivated"}
ADMIN_ERRORS = {**AUTH_ERRORS, 403: "Only admins may do this"}


PROJECTION_POSITION = {
    "X-Projection-Position": {"description": "Store position the projection has processed."}
}
USER_DIRECTORY = "user_directory"


@router.get(
    "",
    name="users-list",
    response_model=UserPage,
    summary="List users (admin), from the user directory projection",
    responses={
        200: {"headers": PROJECTION_POSITION},
        **problem_responses(
            {
                **ADMIN_ERRORS,
                422: "Bad filter, page or X-Min-Event-Position",
                503: "The projection did not reach X-Min-Event-Position within 5 s",
            }
        ),
    },
)
def list_all_users(
    *,
    response: Response,
    admin: AdminUser,
    position: Annotated[int, Depends(projection_caught_up(USER_DIRECTORY))],
    connection: ReadConnection,
    role: Role | None = None,
    q: Annotated[
        str | None,
        Query(max_length=320, pattern=NO_CONTROL_CHARACTERS, description="Email substring"),
    ] = None,
    is_active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> UserPage:
    del admin  # checked by the dependency
    page = list_users(
        connection,
        role=role.value if role else None,
        q=q,
        is_active=is_active,
        limit=limit,
        offset=offset,
    )
    response.headers["X-Projection-Position"] = str(position)
    return UserPage(
        items=[UserPublic.of_row(row) for row in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get(
    "/me",
    name="users-read-me",
    response_model=UserPublic,
    summary="Your own account, as it is now",
    responses=problem_responses(AUTH_ERRORS),
)
def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.of(user)


@router.put(
    "/me",
    name="users-update-me",
    dependencies=[JsonBody],
    response_model=UserPublic,
    summary="Change your name, email or password (the last two need current_password)",
    description=("A new password ends every session, this one included: log in again afterwards."),
    responses={
        200: {"headers": EVENT_POSITION},
        **problem_responses(
            {
                **AUTH_ERRORS,
                400: "Malformed JSON",
                415: "Not a JSON body",
                403: "current_password is wrong",
                409: "Email already registered",
                422: "Invalid body, or current_password missing for an email or password change",
                429: "Too many wrong passwords for this account from your address; see Retry-After",
            }
        ),
    },
)
def update_me(
    *,
    body: UserUpdateMe,
    request: Request,
    response: Response,
    user: CurrentUser,
    app: WriteApp,
    hasher: Hasher,
    refresh_tokens: RefreshTokens,
    reset_tokens: ResetTokens,
    throttle: Throttle,
    settings: AppSettings,
) -> UserPublic:
    new_email = normalise_email(str(body.email)) if body.email is not None else None
    changes_email = new_email is not None and new_email != user.email
    if changes_email or body.new_password is not None:
        if body.current_password is None:
            raise RequestValidationError(
                [
                    {
                        "loc": ("body", "current_password"),
                        "msg": "Field required to change the email or the password",
                        "type": "missing",
                    }
                ]
            )
        # A stolen access token must not buy unlimited guesses: counted like a login.
        guess = reserve_password_guess(
            throttle, settings, email=user.email, address=client_address(request)
        )
        if not hasher.verify(body.current_password, app.password_hash_of(user.id)):
            raise ProblemError("wrong-current-password", "current_password is wrong")
        guess.succeeded()
    # Everything that can fail without the database goes first (hashing is slow and may
    # run out of memory): a request refused after its first write would be half done.
    new_hash = hasher.hash(body.new_password) if body.new_password else None
    context = command_context(request, user.id)
    if body.full_name is not None or changes_email or new_hash is not None:
        # One command: name, email and password change together or not at all.
        try:
            position = app.change_user_profile(
                context,
                user.id,
                full_name=body.full_name,
                email=new_email if changes_email else None,
                password_hash=new_hash,
            )
        except DuplicateKeyError:
            raise ProblemError("email-taken", "This email is already registered") from None
        if new_hash is not None:
            refresh_tokens.revoke_user(user.id)
        if new_hash is not None or changes_email:
            # A reset asked for before (perhaps through the old mailbox) must not undo this.
            reset_tokens.revoke_user(user.id)
        response.headers["X-Event-Position"] = str(position)
    return UserPublic.of(app.get_user(user.id))


def _admin_change_responses(conflict: str) -> dict[int | str, dict[str, Any]]:
    """What an admin's change to another user may answer, documented once."""
    return {
        200: {"headers": EVENT_POSITION},
        **problem_responses(
            {
                **ADMIN_ERRORS,
                400: "Malformed JSON",
                415: "Not a JSON body",
                404: "No such user",
                409: conflict,
                422: "Invalid id or body",
            }
        ),
    }


@router.put(
    "/{user_id}/role",
    name="users-change-role",
    dependencies=[JsonBody],
    response_model=UserPublic,
    summary="Change a user's role (admin)",
    responses=_admin_change_responses("This would leave no admin"),
)
def change_role(
    *,
    user_id: UUID,
    body: RoleChange,
    request: Request,
    response: Response,
    admin: AdminUser,
    app: WriteApp,
) -> UserPublic:
    # The last admin's LastAdminError answers 409 last-admin through the domain mapping.
    position = app.change_role(command_context(request, admin.id), user_id, body.role)
    response.headers["X-Event-Position"] = str(position)
    return UserPublic.of(app.get_user(user_id))


@router.put(
    "/{user_id}/active",
    name="users-change-active",
    dependencies=[JsonBody],
    response_model=UserPublic,
    summary="Deactivate or reactivate a user (admin); deactivation ends their sessions",
    responses=_admin_change_responses("This would leave no active admin"),
)
def change_active(
    *,
    user_id: UUID,
    body: ActiveChange,
    request: Request,
    response: Response,
    admin: AdminUser,
    app: WriteApp,
    refresh_tokens: RefreshTokens,
) -> UserPublic:
    position = app.set_user_active(
        command_context(request, admin.id), user_id, is_active=body.is_active
    )
    if not body.is_active:
        refresh_tokens.revoke_user(user_id)
    response.headers["X-Event-Position"] = str(position)
    return UserPublic.of(app.get_user(user_id))

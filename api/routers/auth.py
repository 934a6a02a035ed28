"""/auth: register, log in (JSON or the OAuth2 form), refresh, reset a password.

Each route is the contract's row: path, who may call it, status, and one call. The logic
lives beside the token code: `api.security.login`, `.sessions` and `.password_reset`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi import APIRouter, BackgroundTasks, Request, Response, status

from api.deps import (
    BEARER,
    AppSettings,
    Hasher,
    JsonBody,
    MailWaker,
    Outbox,
    RefreshTokens,
    ResetTokens,
    Throttle,
    TokenCodecDep,
    WriteApp,
    command_context,
)
from api.problems import ProblemError, problem_responses
from api.schemas.auth import (
    Accepted,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    TokenResponse,
)
from api.schemas.users import UserPublic, UserRegister
from api.security.login import client_host, log_in
from api.security.login_body import LOGIN_OPENAPI_BODY, LoginCredentials
from api.security.password_reset import confirm_reset, send_reset_mail
from api.security.sessions import RefreshRefusedError, rotate
from api.security.throttling import RegisterLimit, ResetConfirmLimit, ResetRequestLimit
from write_model.errors import DuplicateKeyError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/auth", tags=["auth"])

EVENT_POSITION = {"X-Event-Position": {"description": "Store position of the last event."}}


@router.post(
    "/register",
    dependencies=[JsonBody, RegisterLimit],
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    summary="Register a customer account",
    responses={
        201: {"headers": EVENT_POSITION},
        **problem_responses(
            {
                400: "Malformed JSON",
                409: "Email already registered",
                415: "Not a JSON body",
                422: "Invalid body",
                429: "Too many registrations from this address; see Retry-After",
            }
        ),
    },
)
def register(
    body: UserRegister, request: Request, response: Response, app: WriteApp, hasher: Hasher
) -> UserPublic:
    password_hash = hasher.hash(body.password)
    try:
        created = app.register_user(
            command_context(request, None),
            email=str(body.email),
            password_hash=password_hash,
            full_name=body.full_name,
        )
    except DuplicateKeyError:
        raise ProblemError("email-taken", "This email is already registered") from None
    response.headers["X-Event-Position"] = str(created.position)
    return UserPublic.of(app.get_user(created.id))


@router.post(
    "/login",
    response_model=TokenResponse,
    summary="Log in with email and password (JSON, or the OAuth2 password form)",
    openapi_extra=LOGIN_OPENAPI_BODY,
    responses=problem_responses(
        {
            400: "Malformed JSON",
            401: "Bad credentials (the same for an unknown email and a wrong password)",
            415: "Neither JSON nor a form",
            422: "Invalid body",
            429: "Too many failed logins from this address (for this account, or for any); "
            "see Retry-After",
        }
    ),
)
def login(
    *,
    credentials: LoginCredentials,
    request: Request,
    app: WriteApp,
    hasher: Hasher,
    throttle: Throttle,
    settings: AppSettings,
    refresh_tokens: RefreshTokens,
    codec: TokenCodecDep,
) -> TokenResponse:
    pair = log_in(
        email=credentials.email,
        password=credentials.password,
        client=client_host(request),
        app=app,
        hasher=hasher,
        throttle=throttle,
        settings=settings,
        refresh_tokens=refresh_tokens,
        codec=codec,
    )
    return TokenResponse.of(pair)


@router.post(
    "/refresh",
    dependencies=[JsonBody],
    response_model=TokenResponse,
    summary="Trade a refresh token for a new pair (each refresh token works once)",
    responses=problem_responses(
        {
            400: "Malformed JSON",
            401: "Invalid, expired or reused refresh token (a reuse ends every session of "
            "the user), or a session past its lifetime",
            415: "Not a JSON body",
            422: "Invalid body",
        }
    ),
)
def refresh(
    *,
    body: RefreshRequest,
    request: Request,
    app: WriteApp,
    refresh_tokens: RefreshTokens,
    codec: TokenCodecDep,
) -> TokenResponse:
    try:
        pair = rotate(
            refresh_token=body.refresh_token,
            ctx=command_context(request, None),
            app=app,
            refresh_tokens=refresh_tokens,
            codec=codec,
        )
    except RefreshRefusedError as error:
        log.info("refresh refused: %s", error)
        raise ProblemError("invalid-refresh-token", headers=BEARER) from None
    return TokenResponse.of(pair)


@router.post(
    "/password-reset",
    dependencies=[JsonBody, ResetRequestLimit],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    summary="Ask for a password-reset mail (202 whether or not the email is registered)",
    responses=problem_responses(
        {
            400: "Malformed JSON",
            415: "Not a JSON body",
            422: "Invalid body",
            429: "Too many reset requests from this address; see Retry-After",
        }
    ),
)
def request_password_reset(
    *,
    body: PasswordResetRequest,
    background: BackgroundTasks,
    settings: AppSettings,
    app: WriteApp,
    reset_tokens: ResetTokens,
    outbox: Outbox,
    wake_mail: MailWaker,
    throttle: Throttle,
) -> Accepted:
    # After the 202: a registered email must not answer later than an unknown one.
    background.add_task(
        send_reset_mail,
        email=str(body.email),
        ttl=timedelta(seconds=settings.password_reset_ttl_seconds),
        app=app,
        reset_tokens=reset_tokens,
        outbox=outbox,
        wake_mail=wake_mail,
        throttle=throttle,
        settings=settings,
    )
    return Accepted(detail="If this email is registered, a reset token is on its way.")


@router.post(
    "/password-reset/confirm",
    dependencies=[JsonBody, ResetConfirmLimit],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Set a new password with a reset token; ends every session of the user",
    responses={
        204: {"headers": EVENT_POSITION},
        **problem_responses(
            {
                400: "Invalid, used or expired token, or malformed JSON",
                415: "Not a JSON body",
                422: "Invalid body",
                429: "Too many confirmations from this address; see Retry-After",
            }
        ),
    },
)
def confirm_password_reset(
    *,
    body: PasswordResetConfirm,
    request: Request,
    app: WriteApp,
    hasher: Hasher,
    reset_tokens: ResetTokens,
    refresh_tokens: RefreshTokens,
    throttle: Throttle,
) -> Response:
    position = confirm_reset(
        token=body.token,
        new_password=body.new_password,
        ctx=command_context(request, None),
        app=app,
        hasher=hasher,
        reset_tokens=reset_tokens,
        refresh_tokens=refresh_tokens,
        throttle=throttle,
        client=client_host(request),
    )
    return Response(status_code=204, headers={"X-Event-Position": str(position)})

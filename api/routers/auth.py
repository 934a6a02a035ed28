"""/auth: register, log in (JSON or the OAuth2 form), refresh, reset a password.

Login gives the same 401 for an unknown email and a wrong password, and takes the same
time for both: an unknown email is verified against a dummy hash. Failures are counted
per email and per client address; past the limit the answer is 429 with Retry-After.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.deps import BEARER, ContainerDep, JsonBody, TokenCodecDep, command_context
from api.problems import ProblemError, problem_responses
from api.schemas.auth import (
    Accepted,
    LoginForm,
    LoginRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    TokenResponse,
)
from api.schemas.users import UserPublic, UserRegister
from api.security.sessions import RefreshRefusedError, TokenPair, open_session, rotate
from bookstore.bootstrap import Container
from write_model.errors import DuplicateKeyError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/auth", tags=["auth"])

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
EVENT_POSITION = {"X-Event-Position": {"description": "Store position of the last event."}}


def _validation_error(error: ValidationError) -> RequestValidationError:
    return RequestValidationError(
        [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_input=False)]
    )


async def login_credentials(request: Request) -> LoginRequest:
    """Credentials from a JSON body or from the OAuth2 password form, whichever was sent."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in FORM_TYPES:
        form = await request.form()
        try:
            fields = LoginForm.model_validate(
                {key: value for key, value in form.items() if isinstance(value, str)}
            )
        except ValidationError as error:
            raise _validation_error(error) from None
        return LoginRequest(email=fields.username, password=fields.password)
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise ProblemError(
            "unsupported-media-type",
            "Send application/json or application/x-www-form-urlencoded",
        )
    try:
        data: Any = json.loads(await request.body())
    except (ValueError, RecursionError):
        # RecursionError: nested too deeply to parse (e.g. 100,000 "[").
        raise ProblemError("malformed-json", "The body is not valid JSON") from None
    try:
        return LoginRequest.model_validate(data)
    except ValidationError as error:
        raise _validation_error(error) from None


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


def _throttle_keys(request: Request, email: str) -> list[str]:
    address = request.client.host if request.client else "unknown"
    return [f"email:{email.strip().lower()}", f"ip:{address}"]


@router.post(
    "/register",
    dependencies=[JsonBody],
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
            }
        ),
    },
)
def register(
    body: UserRegister, request: Request, response: Response, container: ContainerDep
) -> UserPublic:
    password_hash = container.hasher.hash(body.password)
    try:
        created = container.write_app.register_user(
            command_context(request, None),
            email=str(body.email),
            password_hash=password_hash,
            full_name=body.full_name,
        )
    except DuplicateKeyError:
        raise ProblemError("email-taken", "This email is already registered") from None
    response.headers["X-Event-Position"] = str(created.position)
    return UserPublic.of(container.write_app.get_user(created.id))


LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LoginRequest.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": LoginForm.model_json_schema()},
        },
    }
}


@router.post(
    "/login",
    response_model=TokenResponse,
    summary="Log in with email and password (JSON, or the OAuth2 password form)",
    openapi_extra=LOGIN_BODY,
    responses=problem_responses(
        {
            400: "Malformed JSON",
            401: "Bad credentials (the same for an unknown email and a wrong password)",
            415: "Neither JSON nor a form",
            422: "Invalid body",
            429: "Too many failed logins for this email or address; see Retry-After",
        }
    ),
)
def login(
    credentials: Annotated[LoginRequest, Depends(login_credentials)],
    request: Request,
    container: ContainerDep,
    codec: TokenCodecDep,
) -> TokenResponse:
    # Registration stores the NFC form (the email validator normalises it): a client
    # sending "jo\u0308rg@..." (NFD, as some keyboards do) means the same address.
    email = unicodedata.normalize("NFC", credentials.email)
    throttle = container.auth.throttle
    keys = _throttle_keys(request, email)
    retry_after = throttle.retry_after(keys)
    if retry_after is not None:
        raise ProblemError(
            "login-throttled",
            f"Too many failed logins; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
    app = container.write_app
    user = app.find_user_by_email(email)
    stored = app.password_hash_of(user.id) if user is not None else None
    # With no user, `verify` checks a dummy hash: both failures take the same time.
    verified = container.hasher.verify(credentials.password, stored)
    if user is None or stored is None or not verified or not user.is_active:
        if not verified:
            throttle.record_failure(keys)
        raise ProblemError("invalid-credentials", headers=BEARER)
    throttle.reset(keys[0])
    if container.hasher.needs_update(stored):
        # An old bcrypt hash (or weaker argon2 parameters): upgrade while we hold the password.
        app.rehash_password(user.id, container.hasher.hash(credentials.password))
        log.info("password hash of user %s upgraded", user.id)
    return _tokens(open_session(container, codec, user))


@router.post(
    "/refresh",
    dependencies=[JsonBody],
    response_model=TokenResponse,
    summary="Trade a refresh token for a new pair (each refresh token works once)",
    responses=problem_responses(
        {
            400: "Malformed JSON",
            401: "Invalid, expired or reused refresh token (a reuse ends its whole family)",
            415: "Not a JSON body",
            422: "Invalid body",
        }
    ),
)
def refresh(body: RefreshRequest, container: ContainerDep, codec: TokenCodecDep) -> TokenResponse:
    try:
        return _tokens(rotate(container, codec, body.refresh_token))
    except RefreshRefusedError as error:
        log.info("refresh refused: %s", error)
        raise ProblemError("invalid-refresh-token", headers=BEARER) from None


RESET_SUBJECT = "Reset your Bookstore password"
RESET_BODY = """Someone (hopefully you) asked to reset the password of this Bookstore account.

Your one-time reset token, valid for {minutes} minutes:

    {token}

Send it with your new password:

    POST /auth/password-reset/confirm
    {{"token": "<the token above>", "new_password": "<your new password>"}}

If you did not ask for this, ignore this mail: your password stays as it is.
"""


def _send_reset_mail(container: Container, email: str) -> None:
    """Issue a token and queue its mail, if `email` is an active user's; after the 202.

    Run as a background task, once the answer is out: issuing and queueing take a few
    writes, and a request that waited for them would answer measurably later for a
    registered email than for an unknown one, telling an attacker which emails exist.
    """
    try:
        user = container.write_app.find_user_by_email(email)
        if user is None or not user.is_active:
            return
        ttl = timedelta(seconds=container.settings.password_reset_ttl_seconds)
        token = container.auth.reset_tokens.issue(user.id, ttl=ttl)
        container.auth.outbox.enqueue(
            recipient=user.email,
            subject=RESET_SUBJECT,
            body=RESET_BODY.format(token=token, minutes=int(ttl.total_seconds() // 60)),
        )
        container.wake_mail()
    except Exception:
        # The client has its 202 already; the log (with the correlation id) has the rest.
        log.exception("password reset: the reset mail could not be queued")


@router.post(
    "/password-reset",
    dependencies=[JsonBody],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    summary="Ask for a password-reset mail (202 whether or not the email is registered)",
    responses=problem_responses(
        {400: "Malformed JSON", 415: "Not a JSON body", 422: "Invalid body"}
    ),
)
def request_password_reset(
    body: PasswordResetRequest, background: BackgroundTasks, container: ContainerDep
) -> Accepted:
    background.add_task(_send_reset_mail, container, str(body.email))
    return Accepted(detail="If this email is registered, a reset token is on its way.")


@router.post(
    "/password-reset/confirm",
    dependencies=[JsonBody],
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
            }
        ),
    },
)
def confirm_password_reset(
    body: PasswordResetConfirm, request: Request, container: ContainerDep
) -> Response:
    password_hash = container.hasher.hash(body.new_password)
    user_id = container.auth.reset_tokens.redeem(body.token)
    if user_id is None:
        raise ProblemError("invalid-reset-token", "This reset token is invalid, used or expired")
    position = container.write_app.change_password(
        command_context(request, user_id), user_id, password_hash
    )
    container.auth.refresh_tokens.revoke_user(user_id)
    user = container.write_app.get_user(user_id)
    container.auth.throttle.reset(f"email:{user.email}")
    return Response(status_code=204, headers={"X-Event-Position": str(position)})

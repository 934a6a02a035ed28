"""Dependencies declared once, as `Annotated` aliases: what routes use, the caller, roles.

Routes take the narrow thing they use (`WriteApp`, `Hasher`, `RefreshTokens`, `ReadConnection`,
...), never the whole container, so a router reads as the contract's table does and a test
can see at a glance what a route touches.

`CurrentUser` checks, on every request, the user as the write model has them now (an
aggregate load: always current, unlike a projection), so a demoted, deactivated or
logged-out user loses rights with their very next request, whatever token they hold.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool

from adapters.login_throttle import LoginThrottle
from adapters.mail_outbox import MailOutbox
from adapters.passwords import PasswordHasher
from adapters.refresh_tokens import RefreshTokenStore
from adapters.reset_tokens import ResetTokenStore
from api.problems import ProblemError
from api.security.tokens import InvalidTokenError, TokenCodec
from bookstore.bootstrap import Container
from bookstore.projection_runtime import ProjectionServices
from bookstore.settings import Settings
from read_model.positioned_cache import ListingCache
from write_model.application import Bookstore
from write_model.context import CommandContext
from write_model.errors import NotFoundError
from write_model.user import User
from write_model.values import Role

BEARER = {"WWW-Authenticate": "Bearer"}

# Declares the OAuth2 password flow in OpenAPI, so the docs' Authorize button logs in
# through /auth/login. auto_error=False: a missing token is our own 401 problem.
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/auth/login",
    auto_error=False,
    description="Log in with your email as `username`; the access token lasts 15 minutes.",
)


# The accessors below only read attributes, so they are async: FastAPI then calls them on
# the event loop rather than sending each to the thread pool (a hop per dependency, per
# request; py-spy put the hand-offs at a fifth of a cached `GET /books`).
async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


async def get_token_codec(request: Request) -> TokenCodec:
    codec: TokenCodec = request.app.state.token_codec
    return codec


ContainerDep = Annotated[Container, Depends(get_container)]
TokenCodecDep = Annotated[TokenCodec, Depends(get_token_codec)]


async def get_write_app(container: ContainerDep) -> Bookstore:
    return container.write_app


async def get_hasher(container: ContainerDep) -> PasswordHasher:
    return container.hasher


async def get_settings_of_app(container: ContainerDep) -> Settings:
    return container.settings


async def get_refresh_tokens(container: ContainerDep) -> RefreshTokenStore:
    return container.auth.refresh_tokens


async def get_reset_tokens(container: ContainerDep) -> ResetTokenStore:
    return container.auth.reset_tokens


async def get_outbox(container: ContainerDep) -> MailOutbox:
    return container.auth.outbox


async def get_login_throttle(container: ContainerDep) -> LoginThrottle:
    return container.auth.throttle


async def get_projections(container: ContainerDep) -> ProjectionServices:
    return container.projections


async def get_book_pages(container: ContainerDep) -> ListingCache:
    return container.book_pages


async def get_mail_waker(container: ContainerDep) -> Callable[[], None]:
    """What to call after queueing mail, so it goes out soon (the drainer also polls)."""
    return container.wake_mail


async def get_read_engine(container: ContainerDep) -> Engine:
    return container.read_engine


def read_connection(container: ContainerDep) -> Iterator[Connection]:
    """A connection to the read database for one request, closed after the response."""
    with container.read_engine.connect() as connection:
        yield connection


WriteApp = Annotated[Bookstore, Depends(get_write_app)]
Hasher = Annotated[PasswordHasher, Depends(get_hasher)]
AppSettings = Annotated[Settings, Depends(get_settings_of_app)]
RefreshTokens = Annotated[RefreshTokenStore, Depends(get_refresh_tokens)]
ResetTokens = Annotated[ResetTokenStore, Depends(get_reset_tokens)]
Outbox = Annotated[MailOutbox, Depends(get_outbox)]
Throttle = Annotated[LoginThrottle, Depends(get_login_throttle)]
MailWaker = Annotated[Callable[[], None], Depends(get_mail_waker)]
Projections = Annotated[ProjectionServices, Depends(get_projections)]
ReadConnection = Annotated[Connection, Depends(read_connection)]
ReadEngine = Annotated[Engine, Depends(get_read_engine)]
BookPages = Annotated[ListingCache, Depends(get_book_pages)]


def current_user(
    request: Request,
    app: WriteApp,
    codec: TokenCodecDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    """The caller, checked against their current state; 401 for anything doubtful."""
    if len(request.headers.getlist("authorization")) > 1:
        # Which one would count? Proxies and frameworks disagree: trust neither.
        raise ProblemError("invalid-token", "Send exactly one Authorization header", headers=BEARER)
    if not token:
        raise ProblemError(
            "authentication-required", "Send Authorization: Bearer <token>", headers=BEARER
        )
    try:
        claims = codec.decode_access(token)
    except InvalidTokenError:
        raise ProblemError("invalid-token", headers=BEARER) from None
    try:
        user = app.get_user(claims.user_id)
    except NotFoundError:
        raise ProblemError("invalid-token", headers=BEARER) from None
    if not user.is_active:
        raise ProblemError("invalid-token", "This account is deactivated", headers=BEARER)
    if claims.session_version != user.session_version:
        raise ProblemError("invalid-token", "This session has ended; log in again", headers=BEARER)
    request.state.user_id = user.id
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_role(role: Role) -> Callable[[User], User]:
    """A dependency letting through users whose *current* role includes `role`."""

    def check(user: CurrentUser) -> User:
        if not user.role.includes(role):
            raise ProblemError("forbidden", f"This needs the {role.value} role")
        return user

    check.__name__ = f"require_{role.value}"
    return check


StaffUser = Annotated[User, Depends(require_role(Role.STAFF))]
AdminUser = Annotated[User, Depends(require_role(Role.ADMIN))]


def command_context(request: Request, actor_id: UUID | None) -> CommandContext:
    """The metadata every event of this request carries: correlation id and actor."""
    return CommandContext(
        correlation_id=str(getattr(request.state, "request_id", None) or "-"),
        actor_id=actor_id,
    )


PROJECTION_WAIT_SECONDS = 5.0
# Store positions are 64-bit integers: 18 digits always fit.
POSITION_PATTERN = r"^[0-9]{1,18}$"
_NON_NEGATIVE_INT = re.compile(POSITION_PATTERN)


async def min_event_position(
    x_min_event_position: Annotated[
        str | None,
        Header(
            description="Wait (at most 5 s) until the projection has processed this position.",
            json_schema_extra={"pattern": POSITION_PATTERN},
        ),
    ] = None,
) -> int | None:
    """The read-your-writes position a client asked for; 422 unless a non-negative integer."""
    if x_min_event_position is None:
        return None
    value = x_min_event_position.strip()
    if not _NON_NEGATIVE_INT.fullmatch(value):
        raise RequestValidationError(
            [
                {
                    "loc": ("header", "x-min-event-position"),
                    "msg": "must be a non-negative integer of at most 18 digits",
                    "type": "int_parsing",
                }
            ]
        )
    return int(value)


MinEventPosition = Annotated[int | None, Depends(min_event_position)]

JSON_MEDIA_TYPE = "application/json"


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length is not None and length != "0")


async def require_json_body(request: Request) -> None:
    """415 for a body that is not JSON, instead of FastAPI reading it as a string.

    Without this, a form or text body reaches validation as a string and fails with
    "Input should be a valid dictionary", which tells the client nothing useful. (A JSON
    body that is not UTF-8 fails to parse before this runs: 400 `malformed-json`.)
    """
    content_type = request.headers.get("content-type")
    if content_type is None:
        if not _has_body(request):
            return  # no body at all: validation names the missing fields
        raise ProblemError(
            "unsupported-media-type", f"Send the body as Content-Type: {JSON_MEDIA_TYPE}"
        )
    media_type = content_type.partition(";")[0].strip().lower()
    is_json = media_type == JSON_MEDIA_TYPE or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )
    if not is_json:
        raise ProblemError(
            "unsupported-media-type",
            f"Send the body as Content-Type: {JSON_MEDIA_TYPE}, not {media_type or 'nothing'}",
        )


JsonBody = Depends(require_json_body)


def caught_up_position(projections: ProjectionServices, projection: str, wanted: int | None) -> int:
    """Wait until `projection` has processed `wanted` (503 after 5 s); its position now."""
    if wanted is not None and not projections.wait_for(
        projection, wanted, timeout=PROJECTION_WAIT_SECONDS
    ):
        raise ProblemError(
            "projection-lagging",
            f"The {projection} projection has not reached position {wanted} yet",
            headers={"Retry-After": "1"},
            projection=projection,
            position=projections.position(projection),
        )
    return projections.position(projection)


def projection_caught_up(projection: str) -> Callable[..., int]:
    """A dependency: wait for the client's `X-Min-Event-Position` on `projection`.

    Its value is the projection's position, read *before* the route queries, so the
    `X-Projection-Position` answered never claims more than the rows served. Declare it
    before `ReadConnection` in a route, so no pooled connection is held while waiting.
    """

    def wait(projections: Projections, wanted: MinEventPosition) -> int:
        return caught_up_position(projections, projection, wanted)

    wait.__name__ = f"{projection}_caught_up"
    return wait


def projection_waited(projection: str) -> Callable[..., Awaitable[None]]:
    """A dependency: wait for the client's `X-Min-Event-Position` on `projection`, for a
    route that reads the position itself, with its rows (in one snapshot).

    Async, so a read that asks for no position costs no trip through the thread pool;
    the wait itself (blocking) goes there.
    """

    async def wait(projections: Projections, wanted: MinEventPosition) -> None:
        if wanted is not None:
            await run_in_threadpool(caught_up_position, projections, projection, wanted)

    wait.__name__ = f"{projection}_waited"
    return wait

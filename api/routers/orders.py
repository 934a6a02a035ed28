"""/orders: place an order from the cart, read orders back, cancel them, move them along.

Commands run on the write model and answer the order as it is after them (always
current), with `X-Event-Position`. Reads (`GET /orders`, `GET /orders/{id}`) come from the
`order_history` projection, answer `X-Projection-Position` and wait for a client's
`X-Min-Event-Position`: the position a `POST /orders` answered makes the new order
readable at once.

Another user's order is "not found" for a customer, never "forbidden": its existence is
none of their business.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError

from api.deps import (
    CurrentUser,
    JsonBody,
    ReadConnection,
    StaffUser,
    WriteApp,
    command_context,
    projection_caught_up,
)
from api.problems import ProblemError, problem_responses
from api.schemas.orders import (
    IDEMPOTENCY_KEY_MAX,
    IDEMPOTENCY_KEY_PATTERN,
    OrderPage,
    OrderPublic,
    OrderStatusChange,
)
from api.schemas.users import MAX_OFFSET
from read_model.orders import get_order, list_orders
from write_model.order import OrderStatus
from write_model.user import User
from write_model.values import Role

router = APIRouter(prefix="/orders", tags=["orders"])

ORDER_HISTORY = "order_history"
EVENT_POSITION = {"X-Event-Position": {"description": "Store position of the last event."}}
PROJECTION_POSITION = {
    "X-Projection-Position": {"description": "Store position the projection has processed."}
}
AUTH_ERRORS = {401: "Missing, invalid or expired token, or the account is deactivated"}
LAGGING = {503: "The projection did not reach X-Min-Event-Position within 5 s"}


def _is_staff(user: User) -> bool:
    return user.role.includes(Role.STAFF)


def _location(order_id: UUID) -> str:
    return f"{router.prefix}/{order_id}"


def whose_orders(
    user: CurrentUser,
    user_id: Annotated[
        UUID | None, Query(description="Staff: this user's orders instead of your own.")
    ] = None,
    scope: Annotated[
        Literal["all"] | None, Query(description="Staff: `all` lists every user's orders.")
    ] = None,
) -> UUID | None:
    """Whose orders a list shows: the caller's own, or for staff one user's or all (None).

    A dependency of its own, declared before the projection wait, so that a customer
    asking for others' orders gets the 403 at once rather than after a wait.
    """
    if user_id is None and scope is None:
        return user.id
    if not _is_staff(user):
        raise ProblemError("forbidden", "Only staff may list other users' orders")
    if user_id is not None and scope is not None:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "scope"),
                    "msg": "Send either user_id or scope=all, not both",
                    "type": "value_error",
                }
            ]
        )
    return user_id


@router.get(
    "",
    name="orders-list",
    response_model=OrderPage,
    summary="Your orders, newest first (staff: anyone's), from the order history projection",
    responses={
        200: {"headers": PROJECTION_POSITION},
        **problem_responses(
            {
                **AUTH_ERRORS,
                403: "A customer sent user_id or scope",
                422: "Bad filter, page or X-Min-Event-Position",
                **LAGGING,
            }
        ),
    },
)
def list_my_orders(
    *,
    response: Response,
    owner: Annotated[UUID | None, Depends(whose_orders)],
    position: Annotated[int, Depends(projection_caught_up(ORDER_HISTORY))],
    connection: ReadConnection,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> OrderPage:
    page = list_orders(connection, user_id=owner, limit=limit, offset=offset)
    response.headers["X-Projection-Position"] = str(position)
    return OrderPage(
        items=[OrderPublic.of_row(row) for row in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get(
    "/{order_id}",
    name="orders-read",
    response_model=OrderPublic,
    summary="One order (yours; staff: anyone's), from the order history projection",
    description=(
        "Right after placing an order, send the `X-Event-Position` it answered as "
        "`X-Min-Event-Position`: the read then waits (at most 5 s) until the order is there."
    ),
    responses={
        200: {"headers": PROJECTION_POSITION},
        **problem_responses(
            {
                **AUTH_ERRORS,
                404: "No such order, or not yours",
                422: "Invalid id or X-Min-Event-Position",
                **LAGGING,
            }
        ),
    },
)
def read_order(
    *,
    order_id: UUID,
    response: Response,
    user: CurrentUser,
    position: Annotated[int, Depends(projection_caught_up(ORDER_HISTORY))],
    connection: ReadConnection,
) -> OrderPublic:
    row = get_order(connection, order_id)
    if row is None or (row["user_id"] != user.id and not _is_staff(user)):
        raise ProblemError("not-found", f"Order {order_id} not found")
    response.headers["X-Projection-Position"] = str(position)
    return OrderPublic.of_row(row)


@router.post(
    "",
    name="orders-place",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderPublic,
    summary="Order what is in your cart",
    description=(
        "Snapshots the prices, takes the stock and empties the cart in one atomic step. "
        "With an `Idempotency-Key`, a retry (same key, same user) answers `200` with the "
        "first order and creates nothing; two requests racing with one key make one order."
    ),
    responses={
        201: {
            "description": "The order was placed",
            "headers": {
                **EVENT_POSITION,
                "Location": {"description": "The new order's path."},
            },
        },
        200: {
            "model": OrderPublic,
            "description": "A retry with a used Idempotency-Key: the order it placed",
            "headers": {
                **EVENT_POSITION,
                "Content-Location": {"description": "The order's path."},
            },
        },
        **problem_responses(
            {
                **AUTH_ERRORS,
                409: "The cart is empty, or a line cannot be served (`lines` lists them)",
                422: "Invalid Idempotency-Key",
            }
        ),
    },
)
def place_order(
    *,
    request: Request,
    response: Response,
    user: CurrentUser,
    app: WriteApp,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=IDEMPOTENCY_KEY_MAX,
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="1..255 visible ASCII characters (a UUID, say); makes retries safe.",
        ),
    ] = None,
) -> OrderPublic:
    placed = app.place_order(
        command_context(request, user.id), user.id, idempotency_key=idempotency_key
    )
    response.headers["X-Event-Position"] = str(placed.position)
    if placed.created:
        response.headers["Location"] = _location(placed.order_id)
    else:
        response.status_code = status.HTTP_200_OK
        response.headers["Content-Location"] = _location(placed.order_id)
    return OrderPublic.of(app.order_for(placed.order_id, actor_id=user.id, as_staff=False))


@router.post(
    "/{order_id}/cancel",
    name="orders-cancel",
    response_model=OrderPublic,
    summary="Cancel an order and put its stock back",
    description="Its owner may cancel it while `pending`; staff while `pending` or `paid`.",
    responses={
        200: {"headers": EVENT_POSITION},
        **problem_responses(
            {
                **AUTH_ERRORS,
                404: "No such order, or not yours",
                409: "The order can no longer be cancelled (by you)",
                422: "Invalid id",
            }
        ),
    },
)
def cancel_order(
    *, order_id: UUID, request: Request, response: Response, user: CurrentUser, app: WriteApp
) -> OrderPublic:
    as_staff = _is_staff(user)
    position = app.cancel_order(
        command_context(request, user.id), order_id, actor_id=user.id, as_staff=as_staff
    )
    response.headers["X-Event-Position"] = str(position)
    return OrderPublic.of(app.order_for(order_id, actor_id=user.id, as_staff=as_staff))


@router.put(
    "/{order_id}/status",
    name="orders-change-status",
    dependencies=[JsonBody],
    response_model=OrderPublic,
    summary="Move an order along pending -> paid -> shipped -> delivered (staff)",
    responses={
        200: {"headers": EVENT_POSITION},
        **problem_responses(
            {
                **AUTH_ERRORS,
                400: "Malformed JSON",
                403: "Only staff may do this",
                404: "No such order",
                409: "Not the next step from the order's status",
                415: "Not a JSON body",
                422: "Invalid id, or a status other than paid, shipped or delivered",
            }
        ),
    },
)
def change_status(
    *,
    order_id: UUID,
    body: OrderStatusChange,
    request: Request,
    response: Response,
    staff: StaffUser,
    app: WriteApp,
) -> OrderPublic:
    position = app.advance_order(
        command_context(request, staff.id), order_id, OrderStatus(body.status)
    )
    response.headers["X-Event-Position"] = str(position)
    return OrderPublic.of(app.get_order(order_id))

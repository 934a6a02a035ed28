"""/cart: the signed-in user's own cart, read from the write model so it is always current.

Every answer shows the cart as it is after the command, with the books' current prices; a
command that changed it answers `X-Event-Position`. Stock is checked when a line is added
or re-counted (409 `insufficient-stock`, listing the line) and again when the order is
placed, since others may buy the last copies in between.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response, status

from api.deps import CurrentUser, JsonBody, WriteApp, command_context
from api.problems import problem_responses
from api.schemas.cart import CartItemCreate, CartItemUpdate, CartPublic

router = APIRouter(prefix="/cart", tags=["cart"])

EVENT_POSITION = {"X-Event-Position": {"description": "Store position of the last event."}}
AUTH_ERRORS = {401: "Missing, invalid or expired token, or the account is deactivated"}
BODY_ERRORS = {400: "Malformed JSON", 415: "Not a JSON body"}


def _command_responses(success: int, errors: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    return {
        success: {"headers": EVENT_POSITION},
        **problem_responses({**AUTH_ERRORS, **errors}),
    }


@router.get(
    "",
    name="cart-read",
    response_model=CartPublic,
    summary="Your cart, with current prices and availability",
    responses=problem_responses(AUTH_ERRORS),
)
def read_cart(user: CurrentUser, app: WriteApp) -> CartPublic:
    return CartPublic.of(app.view_cart(user.id))


@router.post(
    "/items",
    name="cart-add-item",
    dependencies=[JsonBody],
    status_code=status.HTTP_201_CREATED,
    response_model=CartPublic,
    summary="Add copies of a book (the same book again adds up)",
    responses=_command_responses(
        201,
        {
            **BODY_ERRORS,
            404: "No such book (or it was removed)",
            409: "More copies than in stock",
            422: "Invalid body, or a line over 99 copies",
        },
    ),
)
def add_item(
    *, body: CartItemCreate, request: Request, response: Response, user: CurrentUser, app: WriteApp
) -> CartPublic:
    position = app.add_to_cart(
        command_context(request, user.id), user.id, body.book_id, body.quantity
    )
    response.headers["X-Event-Position"] = str(position)
    return CartPublic.of(app.view_cart(user.id))


@router.put(
    "/items/{book_id}",
    name="cart-set-quantity",
    dependencies=[JsonBody],
    response_model=CartPublic,
    summary="Set how many copies of a book the cart holds",
    responses=_command_responses(
        200,
        {
            **BODY_ERRORS,
            404: "The book is not in your cart",
            409: "More copies than in stock",
            422: "Invalid id or body",
        },
    ),
)
def set_quantity(
    *,
    book_id: UUID,
    body: CartItemUpdate,
    request: Request,
    response: Response,
    user: CurrentUser,
    app: WriteApp,
) -> CartPublic:
    position = app.set_cart_quantity(
        command_context(request, user.id), user.id, book_id, body.quantity
    )
    response.headers["X-Event-Position"] = str(position)
    return CartPublic.of(app.view_cart(user.id))


@router.delete(
    "/items/{book_id}",
    name="cart-remove-item",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Take a book out of your cart",
    responses=_command_responses(204, {404: "The book is not in your cart", 422: "Invalid id"}),
)
def remove_item(book_id: UUID, request: Request, user: CurrentUser, app: WriteApp) -> Response:
    position = app.remove_from_cart(command_context(request, user.id), user.id, book_id)
    return Response(status_code=204, headers={"X-Event-Position": str(position)})


@router.delete(
    "",
    name="cart-clear",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Empty your cart",
    description="Emptying an empty cart records nothing and answers the same 204.",
    responses=_command_responses(204, {}),
)
def clear_cart(request: Request, user: CurrentUser, app: WriteApp) -> Response:
    position = app.clear_cart(command_context(request, user.id), user.id)
    return Response(status_code=204, headers={"X-Event-Position": str(position)})

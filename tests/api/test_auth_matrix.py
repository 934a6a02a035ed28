"""The auth matrix, generated from the app's own route table.

Every route the app serves must have an entry in `CONTRACT` (the contract's "who"
column); each is called as anonymous, customer, staff and admin, and must answer 401 /
403 below its role and its contracted success status from it up. A new route missing
from the table, or a protected route whose role check was forgotten, fails here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from bookstore.bootstrap import Container
from tests.api.conftest import Account, login, new_account, unique_email
from tests.api.test_password_reset import reset_token_for
from tests.factories import book_create_body, ctx, new_book, new_order

CALLERS = ["anonymous", "customer", "staff", "admin"]
RANK = {"anonymous": -1, "customer": 0, "staff": 1, "admin": 2}


@dataclass
class World:
    """What the sample requests need: a client, the accounts, someone to act on."""

    client: TestClient
    container: Container
    accounts: dict[str, Account]
    helper: Account
    target: Account


@dataclass(frozen=True)
class Rule:
    """Who may call a route (None: anyone), what it answers them, and a valid request."""

    role: str | None
    success: int
    request: Callable[[World], dict[str, Any]] = field(default=lambda _: {})
    path: Callable[[World], dict[str, str]] = field(default=lambda _: {})


def _reset_token(world: World) -> dict[str, Any]:
    # A fresh account each call: reset mails to one email are limited (3 an hour).
    account = new_account(world.client, world.container)
    world.client.post("/auth/password-reset", json={"email": account.email})
    token = reset_token_for(world.container, account.email)
    return {"json": {"token": token, "new_password": account.password}}


def _new_book(world: World) -> str:
    return str(new_book(world.container.write_app, stock=1000))


def _in_every_cart(world: World) -> dict[str, str]:
    """A fresh book in every account's cart, so whoever calls has it in theirs."""
    book = new_book(world.container.write_app, stock=1000)
    for account in world.accounts.values():
        world.container.write_app.add_to_cart(ctx(), uuid.UUID(account.id), book, 1)
    return {"book_id": str(book)}


def _fill_every_cart(world: World) -> dict[str, Any]:
    _in_every_cart(world)
    return {}


def _customers_order(world: World) -> dict[str, str]:
    """A fresh pending order of the customer, projected: its owner and staff may act on it."""
    app = world.container.write_app
    owner = uuid.UUID(world.accounts["customer"].id)
    order = new_order(app, (new_book(app, stock=1000), 1), user_id=owner)
    assert world.container.projections.wait_for("order_history", app.head(), timeout=5.0)
    return {"order_id": str(order)}


def _book(world: World) -> dict[str, str]:
    """A fresh book: commands and the history read the write model, so no wait is needed."""
    return {"book_id": str(new_book(world.container.write_app, stock=1000))}


def _import_file(world: World) -> dict[str, Any]:
    """A one-book JSON file, uploaded as `POST /books/import` takes it (multipart `file`)."""
    return {"files": {"file": ("books.json", json.dumps([book_create_body()]), "application/json")}}


def _listed_book(world: World) -> dict[str, str]:
    """A fresh book, already in the book_listing projection, so a read of it finds it."""
    app = world.container.write_app
    book = new_book(app, stock=1000)
    assert world.container.projections.wait_for("book_listing", app.head(), timeout=5.0)
    return {"book_id": str(book)}


CONTRACT: dict[tuple[str, str], Rule] = {
    ("POST", "/auth/register"): Rule(
        None, 201, lambda w: {"json": {"email": unique_email(), "password": "long enough"}}
    ),
    ("POST", "/auth/login"): Rule(
        None, 200, lambda w: {"json": {"email": w.helper.email, "password": w.helper.password}}
    ),
    ("POST", "/auth/refresh"): Rule(
        None,
        200,
        lambda w: {"json": {"refresh_token": login(w.client, w.helper.email)["refresh_token"]}},
    ),
    ("POST", "/auth/password-reset"): Rule(
        None, 202, lambda w: {"json": {"email": w.helper.email}}
    ),
    ("POST", "/auth/password-reset/confirm"): Rule(None, 204, _reset_token),
    ("GET", "/users/me"): Rule("customer", 200),
    ("PUT", "/users/me"): Rule("customer", 200, lambda w: {"json": {"full_name": "Renamed"}}),
    ("GET", "/users"): Rule("admin", 200),
    ("PUT", "/users/{user_id}/role"): Rule(
        "admin", 200, lambda w: {"json": {"role": "customer"}}, lambda w: {"user_id": w.target.id}
    ),
    ("PUT", "/users/{user_id}/active"): Rule(
        "admin", 200, lambda w: {"json": {"is_active": True}}, lambda w: {"user_id": w.target.id}
    ),
    ("GET", "/cart"): Rule("customer", 200),
    ("POST", "/cart/items"): Rule(
        "customer", 201, lambda w: {"json": {"book_id": _new_book(w), "quantity": 1}}
    ),
    ("PUT", "/cart/items/{book_id}"): Rule(
        "customer", 200, lambda w: {"json": {"quantity": 2}}, _in_every_cart
    ),
    ("DELETE", "/cart/items/{book_id}"): Rule("customer", 204, path=_in_every_cart),
    ("DELETE", "/cart"): Rule("customer", 204),
    ("GET", "/orders"): Rule("customer", 200),
    ("POST", "/orders"): Rule("customer", 201, _fill_every_cart),
    ("GET", "/orders/{order_id}"): Rule("customer", 200, path=_customers_order),
    ("POST", "/orders/{order_id}/cancel"): Rule("customer", 200, path=_customers_order),
    ("PUT", "/orders/{order_id}/status"): Rule(
        "staff", 200, lambda w: {"json": {"status": "paid"}}, _customers_order
    ),
    ("GET", "/books"): Rule(None, 200),
    ("GET", "/books/{book_id}"): Rule(None, 200, path=_listed_book),
    ("POST", "/books"): Rule("staff", 201, lambda w: {"json": book_create_body()}),
    ("PUT", "/books/{book_id}"): Rule("staff", 200, lambda w: {"json": {"stock": 3}}, _book),
    ("DELETE", "/books/{book_id}"): Rule("admin", 204, path=_book),
    ("GET", "/books/{book_id}/history"): Rule("staff", 200, path=_book),
    ("POST", "/books/import"): Rule("staff", 200, _import_file),
    ("GET", "/health"): Rule(None, 200),
    ("GET", "/ready"): Rule(None, 200),
    ("GET", "/metrics"): Rule("admin", 200),
    ("GET", "/projections"): Rule("admin", 200),
    # Each admin call starts a rebuild of user_directory (run in a server thread): the
    # projection with the fewest rows.
    ("POST", "/projections/{name}/rebuild"): Rule(
        "admin", 202, path=lambda w: {"name": "user_directory"}
    ),
    ("GET", "/events"): Rule("admin", 200),
    ("GET", "/openapi.json"): Rule(None, 200),
    ("GET", "/docs"): Rule(None, 200),
    ("GET", "/docs/oauth2-redirect"): Rule(None, 200),
    ("GET", "/redoc"): Rule(None, 200),
}


def served_routes(client: TestClient) -> set[tuple[str, str]]:
    routes = set()
    for route in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        for method in route.methods or ():
            if method != "HEAD":
                routes.add((method, str(route.path)))
    return routes


def expected_status(rule: Rule, caller: str) -> int:
    if rule.role is None or RANK[caller] >= RANK[rule.role]:
        return rule.success
    return 401 if caller == "anonymous" else 403


def test_every_route_answers_every_caller_as_contracted(
    client: TestClient, container: Container
) -> None:
    routes = served_routes(client)
    unlisted = routes - set(CONTRACT)
    assert not unlisted, f"routes without an auth-matrix entry (add them to CONTRACT): {unlisted}"
    gone = set(CONTRACT) - routes
    assert not gone, f"CONTRACT lists routes the app does not serve: {gone}"

    world = World(
        client=client,
        container=container,
        accounts={role: new_account(client, container, role) for role in CALLERS[1:]},
        helper=new_account(client, container),
        target=new_account(client, container),
    )
    wrong: list[str] = []
    for (method, template), rule in sorted(CONTRACT.items()):
        for caller in CALLERS:
            headers = {} if caller == "anonymous" else world.accounts[caller].headers
            path = template.format(**rule.path(world))
            response = client.request(method, path, headers=headers, **rule.request(world))
            want = expected_status(rule, caller)
            if response.status_code != want:
                wrong.append(
                    f"{method} {template} as {caller}: {response.status_code}, want {want}"
                )
    assert not wrong, "\n".join(wrong)


def test_the_openapi_document_declares_security_exactly_on_protected_routes(
    client: TestClient,
) -> None:
    document = client.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            rule = CONTRACT[(method.upper(), path)]
            declared = bool(operation.get("security"))
            assert declared == (rule.role is not None), f"{method.upper()} {path}"


def test_a_route_without_a_role_check_would_fail_the_matrix(
    client: TestClient, container: Container
) -> None:
    """The matrix is not vacuous: an unchecked admin route answers anonymous callers."""
    rule = Rule("admin", 200)
    response = client.get("/health")  # a route that checks nobody
    assert response.status_code != expected_status(rule, "anonymous")
    assert uuid.UUID(new_account(client, container).id)

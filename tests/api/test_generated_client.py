"""An integrator's view: a client generated from `/openapi.json` buys a book.

`openapi-python-client` (a dev dependency) generates a package from the schema that a real
`bookstore serve` process publishes, offline, as an integrator would; the test then drives
the purchase journey through that package's functions and models only, with no
hand-written HTTP: register, log in (JSON), browse, add to the cart, place an order, read
it back. The catalogue is seeded through the write model before the server starts.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import uuid4

import httpx
import pytest

from bookstore import bootstrap
from tests.conftest import make_settings
from tests.factories import book_payload, ctx, register_body
from tests.live_server import running_server

PACKAGE = "bookstore_generated_client"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"


@dataclass(frozen=True)
class Shop:
    base_url: str
    book: dict[str, Any]
    book_position: int


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """A served SQLite bookstore with one book in its catalogue."""
    directory = tmp_path_factory.mktemp("shop")
    url = f"sqlite:///{directory / 'bookstore.sqlite3'}"
    settings = make_settings(url)
    bootstrap.migrate(settings)
    container = bootstrap.build(settings)
    try:
        book = book_payload(title=f"Generated Clients {uuid4().hex[:8]}", stock=3)
        created = container.write_app.register_book(ctx(), **book)
    finally:
        container.close()
    with running_server(url, directory / "server.log") as base_url:
        yield Shop(base_url, {**book, "id": created.id}, created.position)


@pytest.fixture(scope="module")
def client_package(shop: Shop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The package generated from the server's own `/openapi.json`, importable."""
    directory = tmp_path_factory.mktemp("generated")
    schema = directory / "openapi.json"
    schema.write_bytes(httpx.get(f"{shop.base_url}/openapi.json").raise_for_status().content)
    config = directory / "config.json"
    # No post hooks: the generator would otherwise run ruff over its output.
    config.write_text(json.dumps({"post_hooks": []}))
    generated = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(schema),
            "--output-path",
            str(directory / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    sys.path.insert(0, str(directory))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(directory))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def generated(name: str) -> Any:
    """A module of the generated package: `generated("api.orders.orders_place")`."""
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_every_module_of_the_generated_client_imports(client_package: ModuleType) -> None:
    modules = [
        info.name
        for info in pkgutil.walk_packages(client_package.__path__, f"{PACKAGE}.")
        if not info.ispkg
    ]
    assert f"{PACKAGE}.api.auth.auth_login" in modules
    for name in modules:
        importlib.import_module(name)


def test_a_customer_buys_a_book_through_the_generated_client(
    client_package: ModuleType, shop: Shop
) -> None:
    client = client_package.Client(base_url=shop.base_url, raise_on_unexpected_status=True)
    models = generated("models")

    account = register_body()
    registered = generated("api.auth.auth_register").sync_detailed(
        client=client, body=models.UserRegister.from_dict(account)
    )
    assert registered.status_code == 201
    assert registered.parsed.email == account["email"]

    tokens = generated("api.auth.auth_login").sync(
        client=client,
        body=models.LoginRequest(email=account["email"], password=account["password"]),
    )
    assert isinstance(tokens, models.TokenResponse)
    customer = client_package.AuthenticatedClient(
        base_url=shop.base_url, token=tokens.access_token, raise_on_unexpected_status=True
    )

    page = generated("api.books.books_list").sync(
        client=customer, q=shop.book["title"], x_min_event_position=str(shop.book_position)
    )
    assert isinstance(page, models.BookPage)
    (book,) = page.items
    assert (book.id, book.title) == (shop.book["id"], shop.book["title"])
    assert Decimal(book.price) == Decimal(shop.book["price"])

    cart = generated("api.cart.cart_add_item").sync(
        client=customer, body=models.CartItemCreate(book_id=book.id, quantity=2)
    )
    assert isinstance(cart, models.CartPublic)
    assert cart.total_quantity == 2
    assert Decimal(cart.total) == 2 * Decimal(book.price)

    placed = generated("api.orders.orders_place").sync_detailed(
        client=customer, idempotency_key=uuid4().hex
    )
    assert placed.status_code == 201
    order = placed.parsed
    assert isinstance(order, models.OrderPublic)
    assert placed.headers["location"].endswith(f"/orders/{order.id}")

    read_back = generated("api.orders.orders_read").sync(
        order.id, client=customer, x_min_event_position=placed.headers["x-event-position"]
    )
    assert isinstance(read_back, models.OrderPublic)
    assert read_back.id == order.id
    assert read_back.status.value == "pending"
    assert [(line.book_id, line.quantity) for line in read_back.items] == [(book.id, 2)]
    assert Decimal(read_back.total) == 2 * Decimal(book.price)
    assert generated("api.cart.cart_read").sync(client=customer).total_quantity == 0


def test_a_refusal_comes_back_as_the_generated_problem_model(
    client_package: ModuleType, shop: Shop
) -> None:
    client = client_package.Client(base_url=shop.base_url)
    models = generated("models")
    answer = generated("api.auth.auth_login").sync_detailed(
        client=client,
        body=models.LoginRequest(email=f"nobody.{uuid4().hex}@example.com", password="wrong"),
    )
    assert answer.status_code == 401
    assert isinstance(answer.parsed, models.Problem)
    assert answer.parsed.type_ == "https://bookstore.example/problems/invalid-credentials"
    assert answer.parsed.status == 401

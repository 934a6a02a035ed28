"""Thirty buyers, five copies: concurrent orders over HTTP against a real server.

`bookstore serve --workers 2` runs as a subprocess on PostgreSQL (`tests.live_server`), so
the requests race in two processes and many threads, as they would in production: whatever
the interleaving, exactly five orders are placed, everyone else is told 409
`insufficient-stock`, and the book is never sold below zero.
"""

from __future__ import annotations

import threading
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from bookstore import bootstrap
from bookstore.bootstrap import Container
from tests.conftest import make_settings
from tests.factories import PASSWORD, UserPayloadFactory, ctx, new_book
from tests.live_server import running_server

pytestmark = pytest.mark.postgres

BUYERS = 30
STOCK = 5


def new_buyer(container: Container) -> str:
    """A customer registered through the write model (no HTTP rate limit applies)."""
    payload = UserPayloadFactory(password_hash=container.hasher.hash(PASSWORD))
    container.write_app.register_user(ctx(), **payload)
    return str(payload["email"])


def log_in(client: httpx.Client, email: str) -> None:
    response = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"


def test_thirty_buyers_of_five_copies_give_exactly_five_orders_and_a_stock_of_zero(
    postgres_url: str, tmp_path: Path
) -> None:
    settings = make_settings(postgres_url)
    bootstrap.migrate(settings)
    container = bootstrap.build(settings)
    try:
        book = new_book(container.write_app, title="Last Copies", stock=STOCK)
        emails = [new_buyer(container) for _ in range(BUYERS)]
    finally:
        container.close()

    with running_server(postgres_url, tmp_path / "server.log", workers=2) as base_url:
        clients = [httpx.Client(base_url=base_url, timeout=60) for _ in emails]
        try:
            for client, email in zip(clients, emails, strict=True):
                log_in(client, email)
                added = client.post("/cart/items", json={"book_id": str(book), "quantity": 1})
                assert added.status_code == 201, added.text

            start = threading.Barrier(BUYERS)
            answers: dict[int, httpx.Response] = {}

            def buy(index: int) -> None:
                start.wait()
                answers[index] = clients[index].post("/orders")

            threads = [threading.Thread(target=buy, args=(i,)) for i in range(BUYERS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

            placed = [a for a in answers.values() if a.status_code == 201]
            refused = [a for a in answers.values() if a.status_code != 201]
            assert len(answers) == BUYERS
            assert len(placed) == STOCK, [a.text for a in answers.values()]
            for answer in refused:
                assert answer.status_code == 409, answer.text
                problem = answer.json()
                assert problem["type"].endswith("/insufficient-stock"), answer.text
                assert problem["lines"] == [
                    {
                        "book_id": str(book),
                        "title": "Last Copies",
                        "requested": 1,
                        "available": 0,
                    }
                ]

            # Each buyer reads their order back, whichever server process answers.
            for answer in placed:
                owner = clients[next(i for i, a in answers.items() if a is answer)]
                read = owner.get(
                    answer.headers["location"],
                    headers={"X-Min-Event-Position": answer.headers["x-event-position"]},
                )
                assert read.status_code == 200, read.text
                assert read.json()["id"] == answer.json()["id"]
                assert read.json()["items"][0]["quantity"] == 1

            # Losers keep their cart line, now marked unavailable (no copies left).
            cart = clients[next(i for i, a in answers.items() if a.status_code == 409)].get("/cart")
            assert cart.json()["items"][0]["available"] is False
        finally:
            for client in clients:
                client.close()

    container = bootstrap.build(settings)
    try:
        assert container.write_app.get_book(UUID(str(book))).stock == 0
    finally:
        container.close()

"""`GET /books` pages kept against `book_listing`'s stamp: never a stale page or total.

Each server process keeps the pages it served, and each filter's total, against the
projection's serving (version, position) read in the same snapshot as the rows. These
tests change the catalogue between reads, as other clients would, and check that the next
read that asks for the change (`X-Min-Event-Position`) sees it in the page, in `total` and
in `X-Projection-Position`; and that the answers equal those of a process that keeps
nothing. SQLite and PostgreSQL both (the `database_url` fixture behind `client`).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient

from bookstore.bootstrap import Container
from read_model.positioned_cache import ListingCache
from tests.factories import book_payload, ctx


def listing(client: TestClient, after: int, **params: Any) -> tuple[dict[str, Any], int]:
    response = client.get("/books", params=params, headers={"X-Min-Event-Position": str(after)})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return dict(response.json()), int(response.headers["x-projection-position"])


def seed(container: Container, category: str, prices: list[str]) -> tuple[list[uuid.UUID], int]:
    app = container.write_app
    ids = [
        app.register_book(ctx(), **book_payload(category=category, price=Decimal(p), stock=3)).id
        for p in prices
    ]
    return ids, app.head()


def test_a_repeated_page_is_the_same_until_the_catalogue_changes(
    client: TestClient, container: Container
) -> None:
    category = f"cat-{uuid.uuid4().hex[:10]}"
    ids, head = seed(container, category, ["10.00", "20.00", "30.00"])
    first, position = listing(client, head, category=category, sort="price")
    again, position_again = listing(client, head, category=category, sort="price")
    assert again == first
    assert position_again == position >= head
    assert first["total"] == 3
    assert [item["price"] for item in first["items"]] == ["10.00", "20.00", "30.00"]

    # Another client changes a price: the next read that asks for it sees it.
    changed = container.write_app.change_book(ctx(), ids[0], price=Decimal("40.00"))
    page, moved = listing(client, changed, category=category, sort="price")
    assert moved >= changed > position
    assert [item["price"] for item in page["items"]] == ["20.00", "30.00", "40.00"]

    # A new book of the category: the total counts it, on this page and the next.
    _, added = seed(container, category, ["5.00"])
    page, _ = listing(client, added, category=category, sort="price", limit=2)
    assert page["total"] == 4
    assert [item["price"] for item in page["items"]] == ["5.00", "20.00"]
    container.write_app.remove_book(ctx(), ids[1])
    removed = container.write_app.head()
    page, _ = listing(client, removed, category=category, sort="price", limit=2, offset=2)
    assert page["total"] == 3
    assert [item["price"] for item in page["items"]] == ["40.00"]


def test_a_page_walk_counts_once_and_still_sees_a_book_added_midway(
    client: TestClient, container: Container
) -> None:
    category = f"cat-{uuid.uuid4().hex[:10]}"
    _, head = seed(container, category, [f"{n}.00" for n in range(10, 16)])
    first, _ = listing(client, head, category=category, sort="-price", limit=2)
    assert first["total"] == 6
    _, added = seed(container, category, ["99.00"])
    second, _ = listing(client, added, category=category, sort="-price", limit=2, offset=2)
    assert second["total"] == 7  # the total kept for the filter was of an older stamp
    assert [item["price"] for item in second["items"]] == ["14.00", "13.00"]


def test_the_answers_equal_those_of_a_process_that_keeps_nothing(
    client: TestClient, container: Container
) -> None:
    category = f"cat-{uuid.uuid4().hex[:10]}"
    _, head = seed(container, category, ["12.50", "7.25", "12.50", "3.00", "18.00"])
    queries: list[dict[str, Any]] = [
        {"category": category, "sort": sort, "limit": limit, "offset": offset}
        for sort in ("title", "-title", "price", "-price", "created_at", "-created_at")
        for limit, offset in ((2, 0), (2, 2), (2, 4), (10, 0))
    ]
    queries.append({"category": category, "min_price": "7.25", "max_price": "12.50"})
    queries.append({"category": category, "in_stock": "false"})
    kept = [listing(client, head, **query) for query in queries]
    kept_again = [listing(client, head, **query) for query in queries]
    container.book_pages = ListingCache(0)
    fresh = [listing(client, head, **query) for query in queries]
    assert kept == kept_again == fresh
    assert len(container.book_pages.pages) == 0

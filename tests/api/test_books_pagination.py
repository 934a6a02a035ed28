"""Walking the pages of GET /books, in every sort, returns each matching book exactly once.

Hypothesis makes the catalogues: titles from a tiny alphabet in both cases and prices
from a handful of values, so most sort keys tie and only the tie-break by id keeps the
order total. Each example registers its books under a category of its own (so examples
share one database without seeing each other), then walks every sort with a random page
size and random filters, and checks the walk against the filters computed here.

Money is checked on the way: every price comes back exactly as registered, two places.
"""

from __future__ import annotations

import itertools
import uuid
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bookstore.bootstrap import Container
from read_model.books import BookSort
from tests.factories import book_payload, ctx

TITLES = st.text(alphabet="aAbBéÉ", min_size=1, max_size=3)
AUTHORS = st.sampled_from(["Ann", "ann", "ANN", "Bob", "Ann B"])
PRICES = st.sampled_from([Decimal("0.10"), Decimal("0.20"), Decimal("0.30"), Decimal("12.50")])
BOOKS = st.lists(
    st.fixed_dictionaries(
        {"title": TITLES, "author": AUTHORS, "price": PRICES, "stock": st.integers(0, 2)}
    ),
    min_size=0,
    max_size=14,
)
FILTERS = st.fixed_dictionaries(
    {},
    optional={
        "q": st.text(alphabet="aAéb%_ ", min_size=1, max_size=2),
        "author": st.sampled_from(["ann", "BOB", "Ann B", "nobody"]),
        "min_price": st.sampled_from(["0.1", "0.20", "0.3"]),
        "max_price": st.sampled_from(["0.30", "12.5", "1000000"]),
        "in_stock": st.booleans(),
    },
)


def matches(book: dict[str, Any], filters: dict[str, Any]) -> bool:
    """The contract's filters, computed in Python over the books as registered."""
    q = filters.get("q")
    if q and not (q.lower() in book["title"].lower() or q.lower() in book["author"].lower()):
        return False
    if "author" in filters and filters["author"].lower() != book["author"].lower():
        return False
    if "min_price" in filters and book["price"] < Decimal(filters["min_price"]):
        return False
    if "max_price" in filters and book["price"] > Decimal(filters["max_price"]):
        return False
    return "in_stock" not in filters or filters["in_stock"] == (book["stock"] > 0)


def walk(client: TestClient, head: int, params: dict[str, Any], limit: int) -> list[dict]:  # type: ignore[type-arg]
    """Every page, in order, until one comes back short; checks each page's bookkeeping."""
    seen: list[dict] = []  # type: ignore[type-arg]
    offset = 0
    total = None
    while True:
        response = client.get(
            "/books",
            params={**params, "limit": limit, "offset": offset},
            headers={"X-Min-Event-Position": str(head)},
        )
        assert response.status_code == 200, response.text
        page = response.json()
        assert (page["limit"], page["offset"]) == (limit, offset)
        assert total is None or page["total"] == total
        total = page["total"]
        seen.extend(page["items"])
        if len(page["items"]) < limit:
            assert len(seen) == total
            return seen
        offset += limit


def key_then_id(sort: BookSort, book: dict[str, Any]) -> tuple[Any, ...]:
    """What must be non-decreasing along a walk in `sort`, where the key can be compared
    the same way everywhere (prices, timestamps; titles only for ties, see below)."""
    descending = sort.value.startswith("-")
    field = sort.value.lstrip("-")
    if field == "price":
        key: Any = Decimal(book["price"])
    elif field == "created_at":
        key = book["created_at"]
    else:
        return ()
    return (-key if descending and field == "price" else key, book["id"])


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(books=BOOKS, filters=FILTERS, limit=st.integers(1, 5))
def test_walking_every_page_in_every_sort_returns_each_matching_book_once(
    client: TestClient,
    container: Container,
    books: list[dict[str, Any]],
    filters: dict[str, Any],
    limit: int,
) -> None:
    app = container.write_app
    category = f"walk-{uuid.uuid4().hex}"
    registered = {
        str(app.register_book(ctx(), **book_payload(category=category, **book)).id): book
        for book in books
    }
    head = app.head()
    params = {"category": category, **filters}
    expected = {book_id for book_id, book in registered.items() if matches(book, filters)}

    for sort in BookSort:
        walked = walk(client, head, {**params, "sort": sort.value}, limit)
        ids = [book["id"] for book in walked]
        assert len(ids) == len(set(ids)), f"{sort}: a book came twice"
        assert set(ids) == expected, f"{sort}: wrong books"
        # The walk is the same sequence as one page holding everything.
        whole = walk(client, head, {**params, "sort": sort.value}, 100)
        assert [book["id"] for book in whole] == ids
        for book in walked:
            assert book["price"] == f"{registered[book['id']]['price']:.2f}"
        if sort.value.lstrip("-") == "created_at":
            stamps = [book["created_at"] for book in walked]
            assert stamps == sorted(stamps, reverse=sort.value.startswith("-"))
        if sort.value.lstrip("-") == "price":
            keys = [key_then_id(sort, book) for book in walked]
            assert keys == sorted(keys)
        if sort.value.lstrip("-") == "title":
            # Collations order different titles differently (SQLite by code point,
            # PostgreSQL by its locale); equal titles must still be in id order.
            for before, after in itertools.pairwise(walked):
                if before["title"].lower() == after["title"].lower():
                    assert before["id"] < after["id"]


def test_prices_survive_the_round_trip_exactly(client: TestClient, container: Container) -> None:
    """Amounts floats cannot hold (0.10 + 0.20 != 0.30 in binary) stay exact end to end."""
    app = container.write_app
    category = f"money-{uuid.uuid4().hex}"
    amounts = ["0.10", "0.20", "0.30", "999999.99", "0.01", "100.00", "33.33"]
    for amount in amounts:
        app.register_book(ctx(), **book_payload(category=category, price=Decimal(amount)))
    page = client.get(
        "/books",
        params={"category": category, "sort": "price", "limit": 100},
        headers={"X-Min-Event-Position": str(app.head())},
    ).json()
    prices = [book["price"] for book in page["items"]]
    assert prices == sorted(amounts, key=Decimal)
    assert sum(Decimal(price) for price in prices) == Decimal("1000133.93")
    exact = client.get(
        "/books",
        params={"category": category, "min_price": "0.3", "max_price": "0.30"},
        headers={"X-Min-Event-Position": str(app.head())},
    ).json()
    assert [book["price"] for book in exact["items"]] == ["0.30"]

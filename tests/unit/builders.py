"""Small builders of valid, random test data, shared by the unit and integration tests."""

from __future__ import annotations

import random
from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import Application

from write_model.application import Bookstore
from write_model.context import CommandContext
from write_model.isbn import isbn13_check_digit

_rng = random.Random()


def isbn10_check_char(first9: str) -> str:
    """The check character that completes nine digits into an ISBN-10."""
    total = sum((10 - i) * int(c) for i, c in enumerate(first9))
    check = (11 - total % 11) % 11
    return "X" if check == 10 else str(check)


def random_isbn13() -> str:
    body = _rng.choice(["978", "979"]) + "".join(_rng.choices("0123456789", k=9))
    return body + str(isbn13_check_digit(body))


def random_isbn10() -> str:
    body = "".join(_rng.choices("0123456789", k=9))
    return body + isbn10_check_char(body)


def book_fields(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments for `Book.register` / `Bookstore.register_book`."""
    fields: dict[str, Any] = {
        "title": f"Book {uuid4().hex[:8]}",
        "author": "Ursula K. Le Guin",
        "isbn": random_isbn13(),
        "price": Decimal("12.50"),
        "stock": 10,
        "category": "fiction",
    }
    fields.update(overrides)
    return fields


def random_email() -> str:
    return f"reader-{uuid4().hex[:10]}@example.com"


def ctx(actor_id: UUID | None = None, correlation_id: str | None = None) -> CommandContext:
    return CommandContext(correlation_id=correlation_id or f"req-{uuid4().hex}", actor_id=actor_id)


def new_customer(app: Bookstore, *, email: str | None = None) -> UUID:
    return app.register_user(
        ctx(), email=email or random_email(), password_hash=f"$argon2id$fake${uuid4().hex}"
    ).id


def new_book(app: Bookstore, **overrides: Any) -> UUID:
    return app.register_book(ctx(), **book_fields(**overrides)).id


def all_notifications(app: Application[UUID]) -> Sequence[Any]:
    """Every stored event of the application, in store order."""
    return app.recorder.select_notifications(start=None, limit=1_000_000)


def topic_counts(app: Application[UUID]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for notification in all_notifications(app):
        counts[notification.topic] = counts.get(notification.topic, 0) + 1
    return counts


def count_topic(app: Application[UUID], topic: str) -> int:
    return len(app.recorder.select_notifications(start=None, limit=1_000_000, topics=[topic]))


ORDER_PLACED = "write_model.order:Order.Placed"

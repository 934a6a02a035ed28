"""The Order aggregate: prices snapshotted, a total, and its state machine."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest

from write_model.errors import InvalidTransitionError
from write_model.order import Order, OrderLine, OrderStatus


def placed_order() -> Order:
    lines = [
        OrderLine(book_id=uuid4(), title="Dune", quantity=2, unit_price=Decimal("9.99")),
        OrderLine(book_id=uuid4(), title="Emma", quantity=1, unit_price=Decimal("0.01")),
    ]
    return Order.place(user_id=uuid4(), lines=lines)


def test_an_order_keeps_its_lines_prices_and_exact_total() -> None:
    book_id, user_id = uuid4(), uuid4()
    line = OrderLine(book_id=book_id, title="Dune", quantity=3, unit_price=Decimal("19.99"))
    order = Order.place(user_id=user_id, lines=[line])

    assert order.user_id == user_id
    assert order.lines == [line]
    assert order.total == Decimal("59.97")
    assert str(order.total) == "59.97"
    assert order.status is OrderStatus.PENDING
    [placed] = order.collect_events()
    assert type(placed).__name__ == "Placed"
    assert placed.lines[0]["unit_price"] == Decimal("19.99")  # type: ignore[attr-defined]


def test_an_order_moves_from_pending_to_paid_to_shipped_to_delivered() -> None:
    order = placed_order()
    for status in [OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED]:
        order.advance_to(status)
        assert order.status is status
    assert [type(e).__name__ for e in order.collect_events()] == [
        "Placed",
        "StatusChanged",
        "StatusChanged",
        "StatusChanged",
    ]


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], OrderStatus.SHIPPED),
        ([], OrderStatus.DELIVERED),
        ([], OrderStatus.PENDING),
        ([], OrderStatus.CANCELLED),
        ([OrderStatus.PAID], OrderStatus.PAID),
        ([OrderStatus.PAID], OrderStatus.PENDING),
        ([OrderStatus.PAID, OrderStatus.SHIPPED], OrderStatus.PAID),
        ([OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED], OrderStatus.SHIPPED),
    ],
)
def test_an_order_cannot_skip_or_go_back_a_step(
    path: list[OrderStatus], illegal: OrderStatus
) -> None:
    order = placed_order()
    for status in path:
        order.advance_to(status)
    before = order.status
    with pytest.raises(InvalidTransitionError):
        order.advance_to(illegal)
    assert order.status is before


def test_a_cancelled_order_goes_nowhere() -> None:
    order = placed_order()
    order.cancel(by_staff=False)
    assert order.status is OrderStatus.CANCELLED
    with pytest.raises(InvalidTransitionError):
        order.advance_to(OrderStatus.PAID)
    with pytest.raises(InvalidTransitionError):
        order.cancel(by_staff=True)


def test_an_owner_cancels_only_while_pending() -> None:
    order = placed_order()
    order.advance_to(OrderStatus.PAID)
    with pytest.raises(InvalidTransitionError):
        order.cancel(by_staff=False)
    assert order.status is OrderStatus.PAID


@pytest.mark.parametrize("path", [[], [OrderStatus.PAID]])
def test_staff_cancel_while_pending_or_paid(path: list[OrderStatus]) -> None:
    order = placed_order()
    for status in path:
        order.advance_to(status)
    order.cancel(by_staff=True)
    assert order.status is OrderStatus.CANCELLED


@pytest.mark.parametrize(
    "path",
    [
        [OrderStatus.PAID, OrderStatus.SHIPPED],
        [OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED],
    ],
)
def test_nobody_cancels_a_shipped_order(path: list[OrderStatus]) -> None:
    order = placed_order()
    for status in path:
        order.advance_to(status)
    for by_staff in (False, True):
        with pytest.raises(InvalidTransitionError):
            order.cancel(by_staff=by_staff)
    assert order.status is path[-1]

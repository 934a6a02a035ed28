"""The in-process pieces of projections that need no database."""

from __future__ import annotations

import threading

from projections.locks import advisory_key
from projections.positions import PositionBoard
from projections.registry import PROJECTION_NAMES, default_projections
from projections.runner import notify_payload, parse_payload
from read_model.tracking import LogPosition


def test_every_process_derives_the_same_distinct_lock_key_per_projection() -> None:
    keys = [advisory_key(name) for name in PROJECTION_NAMES]
    assert keys == [advisory_key(name) for name in PROJECTION_NAMES]
    assert len(set(keys)) == len(keys)
    assert all(-(2**63) <= key < 2**63 for key in keys)


def test_the_registry_names_the_projections_the_api_relies_on() -> None:
    projections = default_projections()
    assert tuple(p.name for p in projections) == PROJECTION_NAMES
    assert PROJECTION_NAMES == ("book_listing", "order_history", "user_directory")
    for projection in projections:
        assert projection.topics
        assert all(topic.startswith("write_model.") for topic in projection.topics)


def test_a_waiter_on_the_board_wakes_when_the_position_is_published() -> None:
    board = PositionBoard()
    timer = threading.Timer(0.05, board.publish, args=("book_listing", LogPosition(3, 7)))
    timer.start()
    try:
        assert board.wait("book_listing", LogPosition(3, 7), timeout=5)
    finally:
        timer.join()
    assert board.known("book_listing") == LogPosition(3, 7)


def test_the_board_never_goes_backwards_and_times_out_below_the_target() -> None:
    board = PositionBoard()
    board.publish("order_history", LogPosition(5, 9))
    board.publish("order_history", LogPosition(5, 4))
    board.publish("order_history", LogPosition(4, 20))
    assert board.known("order_history") == LogPosition(5, 9)
    assert not board.wait("order_history", LogPosition(5, 10), timeout=0.05)


def test_a_later_transaction_is_further_on_whatever_its_event_ids() -> None:
    # Transaction 8 committed event 4 after transaction 7 committed event 5.
    board = PositionBoard()
    board.publish("book_listing", LogPosition(8, 4))
    assert board.wait("book_listing", LogPosition(7, 5), timeout=0)
    assert not board.wait("book_listing", LogPosition(8, 6), timeout=0)


def test_a_notify_payload_reads_back_as_it_was_sent_and_junk_is_ignored() -> None:
    payload = notify_payload("book_listing", LogPosition(123456789012, 42), 57)
    assert parse_payload(payload) == ("book_listing", LogPosition(123456789012, 42), 57)
    assert parse_payload("book_listing:42") is None
    assert parse_payload("book_listing:1:x:3") is None

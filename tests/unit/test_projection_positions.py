"""The in-process pieces of projections that need no database."""

from __future__ import annotations

import threading

from projections.locks import advisory_key
from projections.positions import PositionBoard
from projections.registry import PROJECTION_NAMES, default_projections


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
    timer = threading.Timer(0.05, board.publish, args=("book_listing", 7))
    timer.start()
    try:
        assert board.wait("book_listing", 7, timeout=5)
    finally:
        timer.join()
    assert board.known("book_listing") == 7


def test_the_board_never_goes_backwards_and_times_out_below_the_target() -> None:
    board = PositionBoard()
    board.publish("order_history", 9)
    board.publish("order_history", 4)
    assert board.known("order_history") == 9
    assert not board.wait("order_history", 10, timeout=0.05)

"""The embedded runner's threads: woken by commits, backing off after failures."""

from __future__ import annotations

import time
from typing import Any, cast

from projections.background import BackgroundRunner
from projections.runner import BatchResult, Runner


class StuckRunner:
    """A runner whose only projection is stopped at a poison event (or down)."""

    names = ("stuck",)

    def __init__(self, *, raises: bool = False) -> None:
        self.raises = raises
        self.calls = 0

    def catch_up_fully(self, name: str, **_: Any) -> BatchResult:
        self.calls += 1
        if self.raises:
            msg = "database down"
            raise ConnectionError(msg)
        return BatchResult(name, 4, 4, 9, 0, error="ValueError: bad", error_position=5)


def commit_burst(background: BackgroundRunner, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        background.wake()
        time.sleep(0.005)


def test_a_poison_event_is_not_retried_on_every_commit() -> None:
    runner = StuckRunner()
    background = BackgroundRunner(cast(Runner, runner), backstop_seconds=0.05)
    background.start()
    try:
        commit_burst(background, 0.6)
    finally:
        background.stop()
    # About a hundred commits: one try, then a pause of a second that commits do not cut.
    assert 1 <= runner.calls <= 2


def test_an_outage_is_not_retried_on_every_commit() -> None:
    runner = StuckRunner(raises=True)
    background = BackgroundRunner(cast(Runner, runner), backstop_seconds=0.05)
    background.start()
    try:
        commit_burst(background, 0.6)
    finally:
        background.stop()
    assert 1 <= runner.calls <= 2

"""`Readiness`: one deadline for all checks, and a hung check never piles up threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters.mail_outbox import Backlog
from api.readiness import Check, Readiness, mail_report


def no_mail() -> Backlog:
    return Backlog(waiting=0, oldest=None)


def fine() -> None:
    return None


@pytest.fixture
def hanging() -> Iterator[threading.Event]:
    """A probe that hangs until the test releases it (always released at the end)."""
    release = threading.Event()
    yield release
    release.set()


def test_every_check_up_means_ready() -> None:
    readiness = Readiness(
        [Check("event_store", "sqlite", fine), Check("read_database", "sqlite", fine)],
        backlog=no_mail,
        can_send_mail=True,
    )

    report = readiness.run()

    assert report.ready
    assert report.failed == []
    assert report.mail.status == "ok"


def test_a_failing_check_is_named_with_the_kind_of_error_only() -> None:
    def refused() -> None:
        raise ConnectionRefusedError("127.0.0.1:6399 refused, password=hunter2")

    report = Readiness(
        [Check("event_store", "sqlite", fine), Check("broker", "redis", refused)],
        backlog=no_mail,
        can_send_mail=True,
    ).run()

    assert not report.ready
    assert report.failed == ["broker"]
    broker = report.checks_as_dict()["broker"]
    assert broker["status"] == "down"
    assert broker["error"] == "ConnectionRefusedError (details in the server log)"


def test_a_hanging_check_is_down_after_the_deadline_and_not_started_again_while_it_hangs(
    hanging: threading.Event,
) -> None:
    calls: list[int] = []

    def slow() -> None:
        calls.append(1)
        hanging.wait()

    readiness = Readiness(
        [Check("read_database", "postgresql", slow)],
        backlog=no_mail,
        can_send_mail=True,
        timeout_seconds=0.05,
    )

    first = readiness.run().checks_as_dict()["read_database"]
    second = readiness.run().checks_as_dict()["read_database"]

    assert first["status"] == "down"
    assert first["error"] == "no answer within 0.05 s"
    assert second["status"] == "down"
    assert "previous check has not answered" in second["error"]
    assert len(calls) == 1

    hanging.set()
    for thread in threading.enumerate():
        if thread.name == "ready-read_database":
            thread.join()
    # The hung run has finished: the next call starts a fresh one.
    assert readiness.run().ready
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("can_send", "age_minutes", "status"),
    [
        (False, 1, "ok"),
        (False, 10, "stuck"),
        (True, 1, "ok"),
        (True, 10, "delayed"),
    ],
)
def test_mail_is_news_only_once_it_has_waited_past_the_threshold(
    can_send: bool, age_minutes: int, status: str
) -> None:
    oldest = datetime.now(UTC) - timedelta(minutes=age_minutes)

    report = mail_report(Backlog(waiting=2, oldest=oldest), can_send=can_send, stuck_after=300)

    assert report.status == status
    assert report.waiting == 2

"""Readiness: the event store, the read database and the broker, each asked with a deadline.

Every check runs at once, in a daemon thread of its own, and `/ready` waits for all of
them together at most `CHECK_TIMEOUT_SECONDS`: an answer after that counts as down. A check
whose previous run still hangs is not started again but reported down at once, so a
load balancer polling `/ready` through an outage never piles up threads.

Mail is reported, not checked: mail that cannot go out (production with no SMTP server,
the outbox's oldest mail older than `MAIL_STUCK_AFTER_SECONDS`) shows in the answer and
the log, but does not take the service out of rotation, since every request still works.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters.mail_outbox import Backlog
from adapters.readiness import (
    backend_of,
    is_redis,
    ping_database,
    ping_event_store,
    ping_redis,
)
from bookstore.bootstrap import Container

log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 1.0
MAIL_STUCK_AFTER_SECONDS = 300.0

UP = "up"
DOWN = "down"


@dataclass(frozen=True)
class Check:
    """One dependency: its name in the answer, what kind of store it is, how to ask it."""

    name: str
    backend: str
    probe: Callable[[], None]


@dataclass(frozen=True)
class CheckResult:
    name: str
    backend: str
    up: bool
    duration_ms: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """What clients see: the kind of failure, never a host, a query or a password."""
        return {
            "status": UP if self.up else DOWN,
            "backend": self.backend,
            "duration_ms": self.duration_ms,
            "error": self.error,
        }


@dataclass(frozen=True)
class MailReport:
    """The outbox as readiness reports it; `status` is `ok`, `stuck`, `delayed` or `unknown`."""

    status: str
    waiting: int | None
    oldest_waiting_seconds: float | None
    can_send: bool
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "waiting": self.waiting,
            "oldest_waiting_seconds": self.oldest_waiting_seconds,
            "can_send": self.can_send,
            "detail": self.detail,
        }


def mail_report(backlog: Backlog, *, can_send: bool, stuck_after: float) -> MailReport:
    """Judge the outbox: waiting mail is news only once it is older than `stuck_after`."""
    age = None
    if backlog.oldest is not None:
        age = round(max(0.0, (datetime.now(UTC) - backlog.oldest).total_seconds()), 3)
    if age is None or age < stuck_after:
        return MailReport("ok", backlog.waiting, age, can_send)
    if not can_send:
        return MailReport(
            "stuck",
            backlog.waiting,
            age,
            can_send,
            f"{backlog.waiting} mail(s) waiting, the oldest for {age:.0f} s, and no SMTP "
            "server is configured (BOOKSTORE_SMTP_URL): nothing will send them",
        )
    return MailReport(
        "delayed",
        backlog.waiting,
        age,
        can_send,
        f"{backlog.waiting} mail(s) waiting, the oldest for {age:.0f} s: sending is failing "
        "or behind (see the mail sender's log)",
    )


@dataclass
class _Run:
    """One probe's thread and what it found."""

    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    duration_ms: float | None = None


@dataclass(frozen=True)
class ReadinessReport:
    checks: tuple[CheckResult, ...]
    mail: MailReport

    @property
    def ready(self) -> bool:
        return all(check.up for check in self.checks)

    @property
    def failed(self) -> list[str]:
        return [check.name for check in self.checks if not check.up]

    def checks_as_dict(self) -> dict[str, dict[str, Any]]:
        return {check.name: check.as_dict() for check in self.checks}


class Readiness:
    """Runs the checks of one process, concurrently and with one deadline for all."""

    def __init__(
        self,
        checks: Sequence[Check],
        *,
        backlog: Callable[[], Backlog],
        can_send_mail: bool,
        timeout_seconds: float = CHECK_TIMEOUT_SECONDS,
        mail_stuck_after_seconds: float = MAIL_STUCK_AFTER_SECONDS,
    ) -> None:
        self.checks = list(checks)
        self.backlog = backlog
        self.can_send_mail = can_send_mail
        self.timeout_seconds = timeout_seconds
        self.mail_stuck_after_seconds = mail_stuck_after_seconds
        self._lock = threading.Lock()
        # Checks still running from an earlier call, by name: when each started.
        self._in_flight: dict[str, float] = {}

    def run(self) -> ReadinessReport:
        mail_holder: list[Backlog] = []
        jobs: dict[str, Callable[[], None]] = {check.name: check.probe for check in self.checks}
        jobs["mail"] = lambda: mail_holder.append(self.backlog())
        runs = self._run_all(jobs)
        results = tuple(self._result(check, runs[check.name]) for check in self.checks)
        for result in results:
            if not result.up:
                log.warning("not ready: %s (%s): %s", result.name, result.backend, result.error)
        mail = self._mail(runs["mail"], mail_holder)
        if mail.status in ("stuck", "delayed"):
            log.warning("mail %s: %s", mail.status, mail.detail)
        return ReadinessReport(results, mail)

    def _run_all(self, jobs: Mapping[str, Callable[[], None]]) -> dict[str, _Run | float]:
        """Start every job not still running from before; wait for all until the deadline.

        A job still running from an earlier call is given as the time it started.
        """
        started: dict[str, _Run | float] = {}
        for name, job in jobs.items():
            with self._lock:
                since = self._in_flight.get(name)
                if since is None:
                    self._in_flight[name] = time.monotonic()
            if since is not None:
                started[name] = since
                continue
            run = _Run()
            thread = threading.Thread(
                target=self._probe, args=(name, job, run), name=f"ready-{name}", daemon=True
            )
            thread.start()
            started[name] = run
        deadline = time.monotonic() + self.timeout_seconds
        for running in started.values():
            if isinstance(running, _Run):
                running.done.wait(max(0.0, deadline - time.monotonic()))
        return started

    def _probe(self, name: str, job: Callable[[], None], run: _Run) -> None:
        began = time.perf_counter()
        try:
            job()
        except Exception as error:  # reported as down, whatever it was
            run.error = error
        finally:
            run.duration_ms = round((time.perf_counter() - began) * 1000, 2)
            with self._lock:
                self._in_flight.pop(name, None)
            run.done.set()

    def _result(self, check: Check, run: _Run | float) -> CheckResult:
        if isinstance(run, float):
            hung = time.monotonic() - run
            return CheckResult(
                check.name,
                check.backend,
                up=False,
                error=f"the previous check has not answered for {hung:.1f} s",
            )
        if not run.done.is_set():
            return CheckResult(
                check.name,
                check.backend,
                up=False,
                error=f"no answer within {self.timeout_seconds:g} s",
            )
        if run.error is not None:
            return CheckResult(
                check.name,
                check.backend,
                up=False,
                duration_ms=run.duration_ms,
                error=f"{type(run.error).__name__} (details in the server log)",
            )
        return CheckResult(check.name, check.backend, up=True, duration_ms=run.duration_ms)

    def _mail(self, run: _Run | float, found: list[Backlog]) -> MailReport:
        if isinstance(run, float) or not run.done.is_set() or run.error is not None or not found:
            return MailReport(
                "unknown", None, None, self.can_send_mail, "the outbox could not be read"
            )
        return mail_report(
            found[0], can_send=self.can_send_mail, stuck_after=self.mail_stuck_after_seconds
        )


def readiness_of(
    container: Container, *, timeout_seconds: float = CHECK_TIMEOUT_SECONDS
) -> Readiness:
    """The checks a process of this configuration depends on.

    Always the event store and the read database; the broker when one is configured; the
    login throttle's Redis when it is another one than the broker.
    """
    settings = container.settings
    checks = [
        Check(
            "event_store",
            backend_of(settings.resolved_event_store_url),
            lambda: ping_event_store(container.write_app),
        ),
        Check(
            "read_database",
            backend_of(settings.database_url),
            lambda: ping_database(container.read_engine, timeout_seconds=timeout_seconds),
        ),
    ]
    broker = settings.broker_url
    if broker:
        checks.append(Check("broker", backend_of(broker), _redis_probe(broker, timeout_seconds)))
    throttle = settings.resolved_redis_url
    if throttle and throttle != broker and is_redis(throttle):
        checks.append(Check("redis", "redis", _redis_probe(throttle, timeout_seconds)))
    return Readiness(
        checks,
        backlog=container.auth.outbox.backlog,
        can_send_mail=bool(settings.smtp_url) or settings.outbox_is_mailbox,
        timeout_seconds=timeout_seconds,
    )


def _redis_probe(url: str, timeout_seconds: float) -> Callable[[], None]:
    if is_redis(url):
        return lambda: ping_redis(url, timeout_seconds=timeout_seconds)

    def unsupported() -> None:
        msg = f"only Redis brokers can be checked, not {backend_of(url)}"
        raise NotImplementedError(msg)

    return unsupported

"""Prometheus metrics: what is counted as it happens, and what is read at scrape time.

Counted as it happens (`Metrics`): HTTP requests and their latency by method, route
*template* and status (`api/request_metrics.py` feeds them), and commands by name and
outcome with the optimistic-concurrency races they lost (the write model's
`command_observers` feed them; the write model itself knows nothing of Prometheus).

Read at scrape time (collectors): each projection's position and lag, from the same status
`bookstore projections status` prints, so the figures are as fresh as the scrape and agree
between server processes; the mail outbox's backlog; and the progress of blue/green
rebuilds (`RebuildProgress`: the rebuild work of issue 11 supplies a `RebuildSource`,
until then nothing is reported, but the metric is declared).

Several server processes (`bookstore serve --workers N`): counters and histograms use
prometheus-client's multiprocess mode when `PROMETHEUS_MULTIPROC_DIR` is set (the serve
command sets it), so every scrape, whichever process answers it, sums all of them. The
scrape-time collectors read the database, which every process sees alike, so they are not
summed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from adapters.mail_outbox import Backlog
from bookstore.multiprocess_metrics import MULTIPROCESS_DIR_ENV
from projections.status import ProjectionStatus

log = logging.getLogger(__name__)

# The classic text format (0.0.4): every Prometheus version, and most other scrapers, read it.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Seconds. This API answers in milliseconds; the top buckets catch the 5 s read-your-writes
# wait and a slow login's password hashing.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PROJECTION_STATES = ("up_to_date", "catching_up", "failed")


@dataclass(frozen=True)
class RebuildProgress:
    """Where one blue/green rebuild of a projection stands: version `version` has processed
    the log up to `position`, on its way to `target` (the head when it started or now)."""

    projection: str
    version: int
    position: int
    target: int

    @property
    def ratio(self) -> float:
        """0..1; 1 once it has reached its target (an empty log counts as done)."""
        if self.target <= 0:
            return 1.0
        return min(1.0, max(0.0, self.position / self.target))


RebuildSource = Callable[[], Iterable[RebuildProgress]]


def no_rebuilds() -> list[RebuildProgress]:
    """No rebuild is running (the default until rebuilds exist)."""
    return []


class Metrics:
    """The metrics of one server process, and the registry `/metrics` answers from."""

    def __init__(self, *, multiprocess_dir: str | None = None) -> None:
        # No `_created` series beside each counter: they double the series for a figure
        # Prometheus does not need (multiprocess mode never has them either).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.multiprocess_dir = multiprocess_dir
        # What a scrape reads. One per app, not the library's global one, so two apps in
        # one process (tests) never share counts.
        self.registry = CollectorRegistry()
        # Multiprocess mode: the values live in files that `MultiProcessCollector` sums; the
        # metric objects themselves are registered nowhere (else this process would count
        # twice).
        counted_in: CollectorRegistry | None = self.registry
        if multiprocess_dir:
            MultiProcessCollector(self.registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
            counted_in = None
        request_labels = ("method", "route", "status")
        self.requests = Counter(
            "bookstore_http_requests",
            "HTTP requests answered, by method, route template and status.",
            request_labels,
            registry=counted_in,
        )
        self.latency = Histogram(
            "bookstore_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status.",
            request_labels,
            buckets=LATENCY_BUCKETS,
            registry=counted_in,
        )
        self.commands = Counter(
            "bookstore_commands",
            "Commands run by the write model, by command and outcome "
            "(ok, rejected, conflict: gave up after losing every race, error).",
            ("command", "outcome"),
            registry=counted_in,
        )
        self.conflicts = Counter(
            "bookstore_command_conflicts",
            "Optimistic-concurrency races lost by commands (each one retried the command).",
            ("command",),
            registry=counted_in,
        )

    @classmethod
    def from_environment(cls) -> Metrics:
        """Multiprocess mode exactly when `PROMETHEUS_MULTIPROC_DIR` is set.

        prometheus-client reads the same variable when it is first imported, to decide where
        values are kept; `bookstore serve` sets it before starting its workers.
        """
        return cls(multiprocess_dir=os.environ.get(MULTIPROCESS_DIR_ENV) or None)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def observe_command(self, command: str, outcome: str, conflicts: int) -> None:
        """A `command_observers` entry of the write model."""
        self.commands.labels(command, outcome).inc()
        if conflicts:
            self.conflicts.labels(command).inc(conflicts)

    def add_collector(self, collector: Collector) -> None:
        """A collector read at every scrape (never at registration)."""
        self.registry.register(collector)

    def exposition(self) -> bytes:
        """Everything, in the Prometheus text format (`CONTENT_TYPE`)."""
        return generate_latest(self.registry)


class ProjectionCollector:
    """Each projection's position and lag, and rebuild progress, read at scrape time.

    A status that cannot be read (the read database is down) gives no projection samples
    and `bookstore_projection_status_up 0`, never a failed scrape: the request metrics
    are worth having most when something is down.
    """

    def __init__(
        self,
        statuses: Callable[[], Sequence[ProjectionStatus]],
        rebuilds: RebuildSource = no_rebuilds,
    ) -> None:
        self.statuses = statuses
        self.rebuilds = rebuilds

    def describe(self) -> list[Metric]:
        return []  # nothing to read when registered: the database is read at scrape time

    def collect(self) -> Iterator[Metric]:
        by_projection = ("projection",)
        position = GaugeMetricFamily(
            "bookstore_projection_position",
            "The newest store position the projection has processed.",
            labels=by_projection,
        )
        head = GaugeMetricFamily(
            "bookstore_projection_head",
            "The store's head as the projection's status saw it.",
            labels=by_projection,
        )
        lag_events = GaugeMetricFamily(
            "bookstore_projection_lag_events",
            "Events in the log the projection has not processed yet.",
            labels=by_projection,
        )
        lag_seconds = GaugeMetricFamily(
            "bookstore_projection_lag_seconds",
            "How long the oldest event the projection has not processed has waited (0 when "
            "caught up).",
            labels=by_projection,
        )
        state = GaugeMetricFamily(
            "bookstore_projection_state",
            "1 for the projection's current state (up_to_date, catching_up, failed), else 0.",
            labels=(*by_projection, "state"),
        )
        up = GaugeMetricFamily(
            "bookstore_projection_status_up",
            "1 when the projections' status could be read for this scrape, else 0.",
        )
        try:
            found = list(self.statuses())
        except Exception:
            log.warning("metrics: the projections' status could not be read", exc_info=True)
            found = []
            up.add_metric([], 0.0)
        else:
            up.add_metric([], 1.0)
        for status in found:
            labels = [status.name]
            position.add_metric(labels, float(status.position))
            head.add_metric(labels, float(status.head))
            lag_events.add_metric(labels, float(status.lag_events))
            lag_seconds.add_metric(labels, float(status.lag_seconds))
            for name in PROJECTION_STATES:
                state.add_metric([status.name, name], 1.0 if name == status.state else 0.0)
        yield from (position, head, lag_events, lag_seconds, state, up)
        yield from self._rebuilds()

    def _rebuilds(self) -> Iterator[Metric]:
        labels = ("projection", "version")
        progress = GaugeMetricFamily(
            "bookstore_projection_rebuild_progress_ratio",
            "A running blue/green rebuild: the share of the log its new version has processed "
            "(0..1). No samples while no rebuild runs.",
            labels=labels,
        )
        remaining = GaugeMetricFamily(
            "bookstore_projection_rebuild_remaining_events",
            "A running blue/green rebuild: store positions left before it reaches its target.",
            labels=labels,
        )
        try:
            running = list(self.rebuilds())
        except Exception:
            log.warning("metrics: rebuild progress could not be read", exc_info=True)
            running = []
        for rebuild in running:
            key = [rebuild.projection, str(rebuild.version)]
            progress.add_metric(key, rebuild.ratio)
            remaining.add_metric(key, float(max(0, rebuild.target - rebuild.position)))
        yield from (progress, remaining)


class OutboxCollector:
    """The mail outbox's backlog, read at scrape time: mail that waits is mail not sent."""

    def __init__(self, backlog: Callable[[], Backlog]) -> None:
        self.backlog = backlog

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        waiting = GaugeMetricFamily(
            "bookstore_mail_waiting", "Mails in the outbox waiting to be sent."
        )
        oldest = GaugeMetricFamily(
            "bookstore_mail_oldest_waiting_seconds",
            "How long the oldest unsent mail has waited (0 when none waits).",
        )
        try:
            found = self.backlog()
        except Exception:
            log.warning("metrics: the mail outbox could not be read", exc_info=True)
            return
        waiting.add_metric([], float(found.waiting))
        age = 0.0
        if found.oldest is not None:
            age = max(0.0, (datetime.now(UTC) - found.oldest).total_seconds())
        oldest.add_metric([], age)
        yield from (waiting, oldest)

"""Wiring metrics and readiness into an app: one call from the app factory.

The rebuild work (blue/green rebuilds, issue 11) reports its progress here: pass its
`RebuildSource` as `rebuilds` (a callable listing the running rebuilds as
`api.metrics.RebuildProgress`), and `/metrics` shows
`bookstore_projection_rebuild_progress_ratio` and `..._remaining_events` for each.
"""

from __future__ import annotations

from fastapi import FastAPI

from api.metrics import Metrics, OutboxCollector, ProjectionCollector, RebuildSource, no_rebuilds
from api.readiness import readiness_of
from api.request_metrics import RequestMetricsMiddleware, RouteTemplates
from bookstore.bootstrap import Container


def install_observability(
    app: FastAPI, container: Container, *, rebuilds: RebuildSource = no_rebuilds
) -> Metrics:
    """Metrics (request middleware, command observer, scrape-time collectors) and readiness.

    Call it after the other middleware is added: the metrics middleware then wraps them
    all, and counts their answers too.
    """
    metrics = Metrics.from_environment()
    metrics.add_collector(ProjectionCollector(container.projection_statuses, rebuilds))
    metrics.add_collector(OutboxCollector(container.auth.outbox.backlog))
    container.write_app.command_observers.append(metrics.observe_command)
    app.state.metrics = metrics
    app.state.readiness = readiness_of(container)
    app.add_middleware(
        RequestMetricsMiddleware, metrics=metrics, templates=RouteTemplates(lambda: app.routes)
    )
    return metrics

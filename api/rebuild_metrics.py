"""Rebuild progress for `/metrics`: the running rebuilds, as `api.metrics` declares them."""

from __future__ import annotations

from api.metrics import RebuildProgress, RebuildSource
from bookstore.projection_runtime import ProjectionServices


def rebuild_progress(projections: ProjectionServices) -> RebuildSource:
    """A scrape-time source: each running rebuild's version, position and target."""

    def running() -> list[RebuildProgress]:
        return [
            RebuildProgress(
                projection=name,
                version=status.rebuild.version,
                position=status.rebuild.position,
                target=status.rebuild.target_position,
            )
            for name, status in projections.rebuild_statuses().items()
            if status.rebuild.running
        ]

    return running

"""Liveness: answers as long as the process serves requests."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["operations"])


@router.get("/health")
def health() -> dict[str, str]:
    """200 while the process is up; readiness of its dependencies is `/ready`'s job."""
    return {"status": "ok"}

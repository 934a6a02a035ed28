"""/ready and /metrics: what load balancers and Prometheus ask (liveness is /health).

Both are plain `def` routes: the checks and the scrape-time collectors block on the
databases, so they run in the thread pool.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from api.deps import AppSettings, TokenCodecDep, WriteApp, current_user, oauth2_scheme
from api.metrics import CONTENT_TYPE, Metrics
from api.problems import ProblemError, problem_responses
from api.readiness import Readiness
from api.schemas.operations import NotReadyProblem, ReadyPublic
from write_model.values import Role

router = APIRouter(tags=["operations"])

NO_STORE = {"Cache-Control": "no-store"}


def get_readiness(request: Request) -> Readiness:
    readiness: Readiness = request.app.state.readiness
    return readiness


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


ReadinessDep = Annotated[Readiness, Depends(get_readiness)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def _same_secret(given: str, expected: str) -> bool:
    """Constant time, whatever the lengths: the digests compared are always 32 bytes."""
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


def metrics_reader(
    request: Request,
    settings: AppSettings,
    app: WriteApp,
    codec: TokenCodecDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> None:
    """The bearer `BOOKSTORE_METRICS_TOKEN` (for Prometheus), else an admin's access token.

    Anything else is what `CurrentUser` answers (401: no token, a bad one, two
    Authorization headers) or 403 for a valid token below admin.
    """
    expected = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
    single_header = len(request.headers.getlist("authorization")) == 1
    if token and expected and single_header and _same_secret(token, expected):
        return
    user = current_user(request, app, codec, token)
    if not user.role.includes(Role.ADMIN):
        raise ProblemError("forbidden", "This needs the admin role or the metrics token")


@router.get(
    "/ready",
    name="operations-ready",
    response_model=ReadyPublic,
    summary="Readiness: the event store, read database and broker all answer",
    description=(
        "200 when every dependency answered within 1 s (checked at once, concurrently); "
        "else 503 problem `not-ready`, whose `failed` names the parts that did not. `mail` "
        "reports mail that waits with no way to be sent (production with no SMTP server), "
        "but never makes the service unready. Liveness is `/health`."
    ),
    responses={
        503: {"model": NotReadyProblem, "description": "A dependency did not answer in time"}
    },
)
def ready(request: Request, readiness: ReadinessDep) -> JSONResponse:
    report = readiness.run()
    checks = report.checks_as_dict()
    mail = report.mail.as_dict()
    if not report.ready:
        named = ", ".join(
            f"{check.name} ({check.backend})" for check in report.checks if not check.up
        )
        raise ProblemError(
            "not-ready",
            f"Not ready: {named} did not answer",
            headers=NO_STORE,
            failed=report.failed,
            checks=checks,
            mail=mail,
        )
    body = ReadyPublic.model_validate({"status": "ready", "checks": checks, "mail": mail})
    return JSONResponse(body.model_dump(mode="json"), headers=NO_STORE)


@router.get(
    "/metrics",
    name="operations-metrics",
    # Not a JSON response class: the 200 is declared below as text/plain alone, and the
    # problems keep their own media type.
    response_class=Response,
    summary="Prometheus metrics (admin, or the bearer BOOKSTORE_METRICS_TOKEN)",
    description=(
        "The Prometheus text format (0.0.4): HTTP requests and latency by route template, "
        "each projection's position and lag, commands and their lost concurrency races, "
        "the mail outbox. Send `Authorization: Bearer <BOOKSTORE_METRICS_TOKEN>` (or an "
        "admin's access token). With several server processes every scrape sums them all."
    ),
    dependencies=[Depends(metrics_reader)],
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "The metrics, in the Prometheus text format",
        },
        **problem_responses(
            {
                401: "No token, or neither the metrics token nor a valid access token",
                403: "A valid access token of a user below admin",
            }
        ),
    },
)
def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.exposition(), media_type=CONTENT_TYPE, headers=NO_STORE)

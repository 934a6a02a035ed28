"""`/ready`: what load balancers and operators read."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from api.problems import Problem


class CheckPublic(BaseModel):
    """One dependency as `/ready` found it."""

    status: Literal["up", "down"]
    backend: str = Field(examples=["postgresql"], description="postgresql, sqlite or redis.")
    duration_ms: float | None = Field(description="How long it took to answer (null: no answer).")
    error: str | None = Field(
        description="Why it is down: the kind of error or the timeout; details are in the "
        "server log (never a host, query or password here)."
    )


class MailPublic(BaseModel):
    """The mail outbox, reported but never a reason to be unready."""

    status: Literal["ok", "stuck", "delayed", "unknown"] = Field(
        description="`stuck`: mail older than 5 minutes waits and no SMTP server is "
        "configured; `delayed`: it waits that long although one is; `unknown`: the outbox "
        "could not be read."
    )
    waiting: int | None = Field(description="Unsent mails.")
    oldest_waiting_seconds: float | None = Field(description="Age of the oldest unsent mail.")
    can_send: bool = Field(description="Whether this process has a way to send mail.")
    detail: str | None


CHECKS_DESCRIPTION = (
    "By name: `event_store`, `read_database`, and `broker` (Redis) when one is configured, "
    "`redis` when the login throttle uses another Redis."
)


class ReadyPublic(BaseModel):
    """Every dependency answered within its deadline."""

    status: Literal["ready"]
    checks: dict[str, CheckPublic] = Field(description=CHECKS_DESCRIPTION)
    mail: MailPublic


class NotReadyProblem(Problem):
    """`not-ready`: `failed` names the dependencies that did not answer."""

    failed: list[str] = Field(examples=[["broker"]])
    checks: dict[str, CheckPublic] = Field(description=CHECKS_DESCRIPTION)
    mail: MailPublic

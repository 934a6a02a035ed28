"""Password reset: a one-time token by mail, then a new password with that token.

Asking always answers 202, and the token and its mail are made after the answer is out
(`send_reset_mail` runs as a background task): issuing and queueing take a few writes, and
a request that waited for them would answer measurably later for a registered email than
for an unknown one, telling an attacker which emails exist.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from adapters.login_throttle import LoginThrottle
from adapters.mail_outbox import MailOutbox
from adapters.passwords import PasswordHasher
from adapters.refresh_tokens import RefreshTokenStore
from adapters.reset_tokens import ResetTokenStore
from api.problems import ProblemError
from api.security.throttling import forgive_password_failures, reset_mail_allowed
from bookstore.settings import Settings
from write_model.application import Bookstore
from write_model.context import CommandContext

log = logging.getLogger(__name__)

RESET_SUBJECT = "Reset your Bookstore password"
RESET_BODY = """Someone (hopefully you) asked to reset the password of this Bookstore account.

Your one-time reset token, valid for {minutes} minutes:

    {token}

Send it with your new password:

    POST /auth/password-reset/confirm
    {{"token": "<the token above>", "new_password": "<your new password>"}}

If you did not ask for this, ignore this mail: your password stays as it is.
"""


def send_reset_mail(
    *,
    email: str,
    ttl: timedelta,
    app: Bookstore,
    reset_tokens: ResetTokenStore,
    outbox: MailOutbox,
    wake_mail: Callable[[], None],
    throttle: LoginThrottle,
    settings: Settings,
) -> None:
    """Issue a token and queue its mail, if `email` is an active user's; after the 202.

    At most `password_reset_max_per_email` mails per email and window (counted for unknown
    emails alike); past it nothing is sent, and the latest mail's token stays good.
    """
    try:
        if not reset_mail_allowed(throttle, settings, email):
            return
        user = app.find_user_by_email(email)
        if user is None or not user.is_active:
            return
        token = reset_tokens.issue(user.id, ttl=ttl)
        outbox.enqueue(
            recipient=user.email,
            subject=RESET_SUBJECT,
            body=RESET_BODY.format(token=token, minutes=int(ttl.total_seconds() // 60)),
        )
        wake_mail()
    except Exception:
        # The client has its 202 already; the log (with the correlation id) has the rest.
        log.exception("password reset: the reset mail could not be queued")


def confirm_reset(
    *,
    token: str,
    new_password: str,
    ctx: CommandContext,
    app: Bookstore,
    hasher: PasswordHasher,
    reset_tokens: ResetTokenStore,
    refresh_tokens: RefreshTokenStore,
    throttle: LoginThrottle,
    client: str,
) -> int:
    """Set the new password if `token` is good (400 if not); end every session; the position.

    The token is checked before the new password is hashed (64 MiB a time: a stranger's
    made-up tokens must not buy hashes), and burnt only after: a hash that fails (out of
    memory) leaves the owner's token good for another try.
    """
    if reset_tokens.holder(token) is None:
        raise ProblemError("invalid-reset-token", "This reset token is invalid, used or expired")
    password_hash = hasher.hash(new_password)
    user_id = reset_tokens.redeem(token)
    if user_id is None:  # used or expired meanwhile
        raise ProblemError("invalid-reset-token", "This reset token is invalid, used or expired")
    # The token's holder is the actor: they proved they own the account's mailbox.
    position = app.change_password(replace(ctx, actor_id=user_id), user_id, password_hash)
    refresh_tokens.revoke_user(user_id)
    # Whoever holds the mailbox may log in at once from here, even after their own typos.
    forgive_password_failures(throttle, email=app.get_user(user_id).email, address=client)
    return position

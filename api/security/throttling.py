"""The throttling policy: which attempts are counted, under which keys, against which limits.

Password guesses (login, and `current_password` on `PUT /users/me`) are counted as the
serious services count them, so that a stranger can slow guessing but cannot lock an owner
out:

- per (account, client address), the tight limit (`login_max_failures`, 10 per 15 min):
  the address that failed is refused for that account, nobody else is;
- per account, from every address (`login_max_failures_per_account`, 50): past it, an
  address that has failed against the account is refused, and a clean address (the owner's)
  still gets one try per window: distributed guessing slows to one guess per address;
- per client address, on every account (`login_max_failures_per_address`, 100): password
  spraying from one address stops.

A guess is reserved (counted) before the password is checked, atomically with the limits'
check (`adapters.login_throttle`), so simultaneous guesses cannot overtake the limit; the
right password hands its reservation back. The other requests a stranger can make expensive
(a 64 MiB hash, a mail) are limited per address too: registration, reset requests and reset
confirmations; reset mails are also limited per email, silently, so a stranger cannot stop
an owner's reset either (the owner holds the mails the stranger asked for).

The client address is `request.client`, which uvicorn takes from `X-Forwarded-For` only when
the request comes from a proxy in `--forwarded-allow-ips` (`BOOKSTORE_FORWARDED_ALLOW_IPS`,
loopback by default). IPv6 clients are counted per /64, the block one subscriber gets.
"""

from __future__ import annotations

import ipaddress
import logging
import unicodedata
from dataclasses import dataclass

from fastapi import Depends, Request

from adapters.login_throttle import Limit, LoginThrottle, Verdict
from api.deps import AppSettings, Throttle
from api.problems import ProblemError
from bookstore.settings import Settings

log = logging.getLogger(__name__)

# Unix sockets and test clients have hosts that are not addresses; keep keys bounded.
MAX_ADDRESS_LENGTH = 64
IPV6_PREFIX = 64


def counted_address(host: str | None) -> str:
    """The address a client is counted under: IPv4 as is, IPv6 by its /64."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host.partition("%")[0])  # drop an IPv6 zone id
    except ValueError:
        return host[:MAX_ADDRESS_LENGTH]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


def client_address(request: Request) -> str:
    """The caller's counted address (after uvicorn applied any trusted X-Forwarded-For)."""
    return counted_address(request.client.host if request.client else None)


def account_key(email: str) -> str:
    """One account, however its email was spelt (case, NFC); unknown emails count alike."""
    return unicodedata.normalize("NFC", email).strip().lower()


def _pair_key(account: str, address: str) -> str:
    return f"login:pair:{address}|{account}"


def _refusal(kind: str, what: str, verdict: Verdict) -> ProblemError:
    return ProblemError(
        kind,
        f"{what}; try again in {verdict.retry_after} s",
        headers={"Retry-After": str(verdict.retry_after)},
    )


@dataclass(frozen=True)
class PasswordGuess:
    """A password check that was reserved (counted as a failure until it proves right)."""

    throttle: LoginThrottle
    pair: str
    account: str
    address: str

    def succeeded(self) -> None:
        """The password was right: forgive this address's failures on the account, and hand
        back the attempt on the account and address counts (which others' guesses share)."""
        self.throttle.forget([self.pair])
        self.throttle.release([self.account, self.address])


def reserve_password_guess(
    throttle: LoginThrottle, settings: Settings, *, email: str, address: str
) -> PasswordGuess:
    """Count a password check before it is made; 429 `login-throttled` if a limit says no."""
    account = account_key(email)
    guess = PasswordGuess(
        throttle,
        pair=_pair_key(account, address),
        account=f"login:account:{account}",
        address=f"login:address:{address}",
    )
    window = settings.login_failure_window_seconds
    verdict = throttle.reserve(
        [
            Limit(guess.pair, settings.login_max_failures, window),
            Limit(
                guess.account,
                settings.login_max_failures_per_account,
                window,
                only_after=guess.pair,
            ),
            Limit(guess.address, settings.login_max_failures_per_address, window),
        ]
    )
    if not verdict.allowed:
        log.info("password check refused for %s from %s (throttled)", account, address)
        raise _refusal("login-throttled", "Too many failed password checks", verdict)
    return guess


def forgive_password_failures(throttle: LoginThrottle, *, email: str, address: str) -> None:
    """Forget an address's failures on an account (its owner proved it another way)."""
    throttle.forget([_pair_key(account_key(email), address)])


def _limit_per_address(
    throttle: LoginThrottle, name: str, address: str, max_count: int, window: int
) -> None:
    verdict = throttle.reserve([Limit(f"{name}:address:{address}", max_count, window)])
    if not verdict.allowed:
        raise _refusal("too-many-requests", f"Too many {name} requests from your address", verdict)


def limit_registrations(request: Request, throttle: Throttle, settings: AppSettings) -> None:
    """A dependency: `register_max_per_address` registrations per address and window."""
    _limit_per_address(
        throttle,
        "register",
        client_address(request),
        settings.register_max_per_address,
        settings.register_window_seconds,
    )


def limit_reset_requests(request: Request, throttle: Throttle, settings: AppSettings) -> None:
    """A dependency: `password_reset_max_per_address` reset requests per address and window."""
    _limit_per_address(
        throttle,
        "password-reset",
        client_address(request),
        settings.password_reset_max_per_address,
        settings.password_reset_window_seconds,
    )


def limit_reset_confirmations(request: Request, throttle: Throttle, settings: AppSettings) -> None:
    """A dependency: `password_reset_confirm_max_per_address` confirmations per address."""
    _limit_per_address(
        throttle,
        "password-reset-confirm",
        client_address(request),
        settings.password_reset_confirm_max_per_address,
        settings.password_reset_confirm_window_seconds,
    )


def reset_mail_allowed(throttle: LoginThrottle, settings: Settings, email: str) -> bool:
    """Whether another reset mail may go to `email` in this window (counted if so).

    Past the limit the request still answers 202 and sends nothing: a 429 here would let a
    stranger stop the owner's reset, and the owner already has the mails asked for.
    """
    verdict = throttle.reserve(
        [
            Limit(
                f"password-reset:email:{account_key(email)}",
                settings.password_reset_max_per_email,
                settings.password_reset_window_seconds,
            )
        ]
    )
    if not verdict.allowed:
        log.info("password reset: no mail, %s had its share in this window", account_key(email))
    return verdict.allowed


RegisterLimit = Depends(limit_registrations)
ResetRequestLimit = Depends(limit_reset_requests)
ResetConfirmLimit = Depends(limit_reset_confirmations)

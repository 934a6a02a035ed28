"""Throttling as a user meets it: strangers slow guessing but lock nobody out (issue 9).

Every test here runs on each throttle store: the write-side table on SQLite and on
PostgreSQL, and Redis. Client addresses are chosen with `X-Forwarded-For`, trusted from the
test client exactly as uvicorn trusts it from a configured proxy (the real `bookstore serve`
and its `--forwarded-allow-ips` are checked in a subprocess at the end).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from adapters.passwords import PasswordHasher
from api.app import create_app
from api.security.throttling import counted_address
from bookstore import bootstrap
from bookstore.bootstrap import Container
from tests.api.conftest import PASSWORD, assert_problem, unique_email
from tests.conftest import TEST_SECRET, make_settings
from tests.services import fresh_postgres_database, fresh_redis_db

WRONG = "not the password"


class CountingHasher(PasswordHasher):
    """The real hasher, counting the expensive calls a stranger can cause."""

    def __init__(self, real: PasswordHasher, *, slow_verify: float = 0.0) -> None:
        self.__dict__.update(real.__dict__)
        self.verifications = 0
        self.hashes = 0
        self.slow_verify = slow_verify
        self._lock = threading.Lock()

    def verify(self, password: str, password_hash: str | None) -> bool:
        with self._lock:
            self.verifications += 1
        # Widens the window in which simultaneous guesses overlap (not a timing assertion).
        time.sleep(self.slow_verify)
        return super().verify(password, password_hash)

    def hash(self, password: str) -> str:
        with self._lock:
            self.hashes += 1
        return super().hash(password)


class Site:
    """One server over one throttle store; requests come from any address we name."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self.hasher = CountingHasher(container.hasher)
        container.hasher = self.hasher
        # The test client is "testclient": trusted like a proxy, its X-Forwarded-For counts.
        app = ProxyHeadersMiddleware(
            create_app(container),  # type: ignore[arg-type]
            trusted_hosts=["testclient"],
        )
        self.client = TestClient(app, raise_server_exceptions=False)  # type: ignore[arg-type]

    def post(
        self, path: str, body: dict[str, Any], *, address: str, token: str | None = None
    ) -> httpx.Response:
        headers = {"X-Forwarded-For": address}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response: httpx.Response = self.client.post(path, json=body, headers=headers)
        return response

    def register(self, email: str, *, address: str = "192.0.2.250") -> None:
        body = {"email": email, "password": PASSWORD}
        assert self.post("/auth/register", body, address=address).status_code == 201

    def login(self, email: str, password: str, *, address: str) -> httpx.Response:
        return self.post("/auth/login", {"email": email, "password": password}, address=address)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Settings naming one throttle store: the table (SQLite, PostgreSQL) or Redis."""
    sqlite_url = f"sqlite:///{tmp_path / 'bookstore.sqlite3'}"
    if request.param == "sqlite":
        yield {"database_url": sqlite_url}
    elif request.param == "postgres":
        with fresh_postgres_database() as url:
            yield {"database_url": url}
    else:
        with fresh_redis_db() as redis_url:
            yield {"database_url": sqlite_url, "redis_url": redis_url}


@pytest.fixture
def site(store: dict[str, Any]) -> Iterator[Callable[..., Site]]:
    """Build a site with some limits changed; closed after the test."""
    with ExitStack() as stack:

        def build(**limits: Any) -> Site:
            settings = make_settings(**{**store, **limits})
            bootstrap.migrate(settings)
            made = Site(bootstrap.build(settings))
            stack.enter_context(made.client)
            return made

        yield build


def retry_after(response: httpx.Response) -> int:
    value = int(response.headers["retry-after"])
    assert value > 0
    return value


# ------------------------------------------------------------ item 1: no lock-out by strangers


def test_a_strangers_failures_do_not_lock_the_owner_out_from_another_address(
    site: Callable[..., Site],
) -> None:
    server = site()
    victim = unique_email("victim")
    server.register(victim)
    for _ in range(10):
        assert server.login(victim, WRONG, address="203.0.113.66").status_code == 401

    assert server.login(victim, PASSWORD, address="198.51.100.7").status_code == 200


def test_the_address_that_failed_ten_times_is_refused_for_that_account_with_retry_after(
    site: Callable[..., Site],
) -> None:
    server = site()
    email = unique_email()
    server.register(email)
    for _ in range(10):
        assert server.login(email, WRONG, address="203.0.113.66").status_code == 401

    refused = server.login(email, PASSWORD, address="203.0.113.66")
    assert_problem(refused, 429, "login-throttled")
    assert retry_after(refused) <= 15 * 60
    # The refused attempts were never checked: the stranger learns nothing more.
    assert server.hasher.verifications == 10


def test_an_address_guessing_at_many_accounts_is_stopped_by_the_address_limit(
    site: Callable[..., Site],
) -> None:
    server = site(login_max_failures_per_address=5)
    for _ in range(5):
        assert server.login(unique_email(), WRONG, address="203.0.113.66").status_code == 401

    refused = server.login(unique_email(), WRONG, address="203.0.113.66")
    assert_problem(refused, 429, "login-throttled")
    retry_after(refused)
    assert server.login(unique_email(), WRONG, address="198.51.100.7").status_code == 401


def test_past_the_account_limit_each_address_gets_one_guess_and_the_owner_still_logs_in(
    site: Callable[..., Site],
) -> None:
    server = site(login_max_failures=3, login_max_failures_per_account=6)
    victim = unique_email("victim")
    server.register(victim)
    for bot in ("203.0.113.1", "203.0.113.2"):
        for _ in range(3):
            assert server.login(victim, WRONG, address=bot).status_code == 401

    # The account has had its 6 failures: a new bot gets one guess, then waits.
    assert server.login(victim, WRONG, address="203.0.113.3").status_code == 401
    refused = server.login(victim, WRONG, address="203.0.113.3")
    assert_problem(refused, 429, "login-throttled")
    retry_after(refused)
    # The owner, from a clean address, is let in.
    assert server.login(victim, PASSWORD, address="198.51.100.7").status_code == 200


def test_the_right_password_forgives_that_address_its_failures(
    site: Callable[..., Site],
) -> None:
    server = site()
    email = unique_email()
    server.register(email)
    for _ in range(9):
        assert server.login(email, WRONG, address="198.51.100.7").status_code == 401
    assert server.login(email, PASSWORD, address="198.51.100.7").status_code == 200
    for _ in range(9):
        assert server.login(email, WRONG, address="198.51.100.7").status_code == 401
    assert server.login(email, PASSWORD, address="198.51.100.7").status_code == 200


def test_simultaneous_wrong_guesses_cannot_overtake_the_limit(site: Callable[..., Site]) -> None:
    server = site()
    email = unique_email()
    server.register(email)
    server.hasher.slow_verify = 0.2
    server.hasher.verifications = 0

    def guess(_: int) -> int:
        return server.login(email, WRONG, address="203.0.113.66").status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(guess, range(16)))

    assert server.hasher.verifications == 10
    assert sorted(statuses) == [401] * 10 + [429] * 6


@pytest.mark.parametrize(
    ("host", "counted"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("testclient", "testclient"),
        (None, "unknown"),
    ],
)
def test_clients_are_counted_by_address_and_ipv6_by_its_64(host: str | None, counted: str) -> None:
    assert counted_address(host) == counted


def test_ipv6_addresses_of_one_64_share_one_count(site: Callable[..., Site]) -> None:
    server = site(login_max_failures_per_address=5)
    for n in range(5):
        assert (
            server.login(unique_email(), WRONG, address=f"2001:db8:1:2::{n + 1:x}").status_code
            == 401
        )

    same_64 = server.login(unique_email(), WRONG, address="2001:db8:1:2:ffff::1")
    assert_problem(same_64, 429, "login-throttled")
    assert server.login(unique_email(), WRONG, address="2001:db8:1:3::1").status_code == 401


# ------------------------------------------------------------ item 5: reset requests


def test_reset_requests_are_limited_per_address_with_retry_after(
    site: Callable[..., Site],
) -> None:
    server = site(password_reset_max_per_address=3)
    for _ in range(3):
        body = {"email": unique_email()}
        assert server.post("/auth/password-reset", body, address="203.0.113.5").status_code == 202

    refused = server.post("/auth/password-reset", {"email": unique_email()}, address="203.0.113.5")
    assert_problem(refused, 429, "too-many-requests")
    retry_after(refused)
    other = server.post("/auth/password-reset", {"email": unique_email()}, address="198.51.100.7")
    assert other.status_code == 202


def test_reset_mails_per_email_are_limited_but_every_request_is_answered_202(
    site: Callable[..., Site],
) -> None:
    server = site(password_reset_max_per_email=2)
    email = unique_email()
    server.register(email)
    for n in range(6):
        answer = server.post("/auth/password-reset", {"email": email}, address=f"203.0.113.{n}")
        assert answer.status_code == 202

    assert len(server.container.auth.outbox.messages(recipient=email)) == 2


# ------------------------------------------------------------ item 6: current_password


def test_wrong_current_passwords_are_throttled_like_logins(site: Callable[..., Site]) -> None:
    server = site()
    email = unique_email()
    server.register(email)
    token = server.login(email, PASSWORD, address="198.51.100.7").json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}

    def change(current: str) -> httpx.Response:
        body = {"new_password": "a brand new password", "current_password": current}
        headers = {**auth, "X-Forwarded-For": "198.51.100.7"}
        response: httpx.Response = server.client.put("/users/me", json=body, headers=headers)
        return response

    for _ in range(10):
        assert_problem(change(WRONG), 403, "wrong-current-password")
    refused = change(PASSWORD)
    assert_problem(refused, 429, "login-throttled")
    retry_after(refused)
    # They count against logins too: the same guesses through the other door.
    assert_problem(server.login(email, PASSWORD, address="198.51.100.7"), 429, "login-throttled")


# ------------------------------------------------------------ item 7: check before hashing


def test_a_bad_reset_token_is_refused_before_any_password_is_hashed(
    site: Callable[..., Site],
) -> None:
    server = site()
    body = {"token": "x" * 43, "new_password": "a brand new password"}
    refused = server.post("/auth/password-reset/confirm", body, address="203.0.113.5")
    assert_problem(refused, 400, "invalid-reset-token")
    assert server.hasher.hashes == 0


def test_registrations_are_limited_per_address(site: Callable[..., Site]) -> None:
    server = site(register_max_per_address=3)
    for _ in range(3):
        server.register(unique_email(), address="203.0.113.5")

    body = {"email": unique_email(), "password": PASSWORD}
    refused = server.post("/auth/register", body, address="203.0.113.5")
    assert_problem(refused, 429, "too-many-requests")
    retry_after(refused)
    assert server.hasher.hashes == 3
    server.register(unique_email(), address="198.51.100.7")


def test_reset_confirmations_are_limited_per_address(site: Callable[..., Site]) -> None:
    server = site(password_reset_confirm_max_per_address=3)
    body = {"token": "x" * 43, "new_password": "a brand new password"}
    for _ in range(3):
        answer = server.post("/auth/password-reset/confirm", body, address="203.0.113.5")
        assert_problem(answer, 400, "invalid-reset-token")

    refused = server.post("/auth/password-reset/confirm", body, address="203.0.113.5")
    assert_problem(refused, 429, "too-many-requests")
    retry_after(refused)
    other = server.post("/auth/password-reset/confirm", body, address="198.51.100.7")
    assert_problem(other, 400, "invalid-reset-token")


# ------------------------------------------------------------ the real server and its proxies


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served(tmp_path: Path, *options: str) -> Iterator[str]:
    """`bookstore serve` in a subprocess on the embedded SQLite default; its base URL."""
    port = _free_port()
    env = {
        **os.environ,
        "BOOKSTORE_ENV": "test",
        "BOOKSTORE_SECRET_KEY": TEST_SECRET,
        "BOOKSTORE_DATABASE_URL": f"sqlite:///{tmp_path / 'served.sqlite3'}",
        "BOOKSTORE_PASSWORD_HASH_TIME_COST": "1",
        "BOOKSTORE_PASSWORD_HASH_MEMORY_KIB": "8192",
        "BOOKSTORE_PASSWORD_HASH_PARALLELISM": "1",
        "BOOKSTORE_LOGIN_MAX_FAILURES": "2",
    }
    for name in ("BOOKSTORE_BROKER_URL", "BOOKSTORE_REDIS_URL", "BOOKSTORE_FORWARDED_ALLOW_IPS"):
        env.pop(name, None)
    bookstore_command = str(Path(sys.executable).parent / "bookstore")
    command = [bookstore_command, "serve", "--port", str(port), *options]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                assert process.stderr is not None
                pytest.fail(f"bookstore serve exited: {process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("bookstore serve did not answer /health within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _owner_after_strangers(base: str) -> tuple[int, int]:
    """Two failures 'from' 203.0.113.66, then the right password from 203.0.113.66 and
    from 198.51.100.7 (each as X-Forwarded-For); the two statuses."""
    email = unique_email()
    body = {"email": email, "password": PASSWORD}
    assert httpx.post(f"{base}/auth/register", json=body).status_code == 201

    def login(password: str, address: str) -> int:
        return httpx.post(
            f"{base}/auth/login",
            json={"email": email, "password": password},
            headers={"X-Forwarded-For": address},
        ).status_code

    assert [login(WRONG, "203.0.113.66") for _ in range(2)] == [401, 401]
    return login(PASSWORD, "203.0.113.66"), login(PASSWORD, "198.51.100.7")


@pytest.mark.timeout(180)
def test_serve_trusts_x_forwarded_for_only_from_the_configured_proxies(tmp_path: Path) -> None:
    # Loopback is a configured proxy: each forwarded client is counted on its own.
    with served(tmp_path, "--forwarded-allow-ips", "127.0.0.1") as base:
        assert _owner_after_strangers(base) == (429, 200)
    # Only 192.0.2.1 is: requests from loopback are counted as loopback, whatever they claim.
    with served(tmp_path, "--forwarded-allow-ips", "192.0.2.1") as base:
        assert _owner_after_strangers(base) == (429, 429)

"""What every benchmark shares: where PostgreSQL is, and a throw-away database per run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import psycopg

ADMIN_URL = os.environ.get(
    "BOOKSTORE_BENCH_POSTGRES_URL",
    os.environ.get("BOOKSTORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
)


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one run (never an existing one), dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{ADMIN_URL.rpartition('/')[0]}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_env(url: str, *, broker_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a benched `bookstore serve`: cheap password hashing (login cost is
    `bench.auth`'s subject), quiet logs, this database, and a broker only when given."""
    env = dict(os.environ)
    env.update(
        BOOKSTORE_DATABASE_URL=url,
        BOOKSTORE_ENV="development",
        BOOKSTORE_SECRET_KEY="bench-secret-key-0123456789abcdef0123456789",
        BOOKSTORE_PASSWORD_HASH_TIME_COST="1",
        BOOKSTORE_PASSWORD_HASH_MEMORY_KIB="8192",
        BOOKSTORE_PASSWORD_HASH_PARALLELISM="1",
        BOOKSTORE_LOG_LEVEL="WARNING",
        **extra,
    )
    env.pop("BOOKSTORE_EVENT_STORE_URL", None)
    env.pop("BOOKSTORE_BROKER_URL", None)
    if broker_url:
        env["BOOKSTORE_BROKER_URL"] = broker_url
    return env


@contextmanager
def running(command: list[str], env: dict[str, str], probe_url: str) -> Iterator[int]:
    """Run a server process until `probe_url` answers below 500; its pid. Stopped after."""
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            with suppress(httpx.HTTPError):
                if httpx.get(probe_url, timeout=1).status_code < 500:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{command[0]} did not come up")
            time.sleep(0.2)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()

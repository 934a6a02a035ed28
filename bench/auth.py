"""Login latency with the production password-hash parameters, beside a bare argon2 verify.

Baseline: `argon2.PasswordHasher.verify` alone (argon2-cffi, the same argon2id parameters
as `Settings`' defaults): the floor any login with these parameters has to pay.
Figure: `POST /auth/login` through the whole app in-process (httpx -> ASGI -> FastAPI ->
event store + credentials table -> argon2id verify -> JWT + refresh-token row), p50 of N.

Also measured, since every authenticated request pays it: the current-user check (JWT
decode + a User aggregate load from the write model), as `GET /users/me` beside
`GET /health` (same stack, no auth). Run: `/work/venv/bin/python -m bench.auth`.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import argon2
from fastapi.testclient import TestClient

from api.app import create_app
from bench.common import fresh_database
from bookstore import bootstrap
from bookstore.settings import Settings

PASSWORD = "correct horse battery staple"


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A fresh, throw-away database of the given kind."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        return
    with fresh_database("bench_auth") as url:
        yield url


def p50_ms(*calls: Callable[[], Any], n: int, warm_up: int = 3) -> list[float]:
    """The p50 of each call, in ms. Calls alternate, so that the machine's drift (it is
    shared and noisy) hits baseline and figure alike."""
    for _ in range(warm_up):
        for call in calls:
            call()
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(n):
        for call, kept in zip(calls, samples, strict=True):
            began = time.perf_counter()
            call()
            kept.append(time.perf_counter() - began)
    return [statistics.median(kept) * 1000 for kept in samples]


def run(kind: str, logins: int, requests: int) -> None:
    with database(kind) as url:
        settings = Settings(
            env="test",
            database_url=url,
            secret_key=secrets.token_urlsafe(48),  # type: ignore[arg-type]
            broker_url=None,
        )
        bootstrap.migrate(settings)
        container = bootstrap.build(settings)
        bare = argon2.PasswordHasher(
            time_cost=settings.password_hash_time_cost,
            memory_cost=settings.password_hash_memory_kib,
            parallelism=settings.password_hash_parallelism,
            type=argon2.Type.ID,
        )
        stored = bare.hash(PASSWORD)
        with TestClient(create_app(container)) as client:
            email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
            created = client.post("/auth/register", json={"email": email, "password": PASSWORD})
            assert created.status_code == 201, created.text
            credentials = {"email": email, "password": PASSWORD}

            def login() -> None:
                response = client.post("/auth/login", json=credentials)
                assert response.status_code == 200, response.text

            baseline, figure = p50_ms(lambda: bare.verify(stored, PASSWORD), login, n=logins)
            token = client.post("/auth/login", json=credentials).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            user_id = uuid.UUID(client.get("/users/me", headers=headers).json()["id"])
            health, me, load = p50_ms(
                lambda: client.get("/health"),
                lambda: client.get("/users/me", headers=headers),
                lambda: container.write_app.get_user(user_id),
                n=requests,
            )

        print(f"\n== auth on {kind} ({logins} logins, {requests} requests) ==")
        print(
            f"argon2id t={settings.password_hash_time_cost} "
            f"m={settings.password_hash_memory_kib} KiB p={settings.password_hash_parallelism}"
        )
        print(f"baseline  bare argon2id verify     p50 {baseline:8.2f} ms")
        print(f"figure    POST /auth/login         p50 {figure:8.2f} ms")
        print(f"ratio     login / bare verify          {figure / baseline:8.2f}x")
        print(f"baseline  GET /health (no auth)    p50 {health:8.2f} ms")
        print(f"figure    GET /users/me            p50 {me:8.2f} ms")
        print(f"          current-user check costs     {me - health:8.2f} ms")
        print(f"          (a User aggregate load:  p50 {load:8.2f} ms)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.auth", description=__doc__)
    parser.add_argument("--db", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--logins", type=int, default=40)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)
    kinds = ["postgres", "sqlite"] if args.db == "both" else [args.db]
    for kind in kinds:
        run(kind, args.logins, args.requests)


if __name__ == "__main__":
    main()

"""A real `bookstore serve` process, for tests that talk HTTP to it as an outside client would.

The server is the console script a user runs, in its own process group, with the test
settings (fast password hashing, the test secret) passed as `BOOKSTORE_*` variables; the
rest of the caller's `BOOKSTORE_*` environment is dropped so a developer's shell cannot
point it at a real database. On SQLite it migrates first, as `make run` does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

from tests.conftest import TEST_SECRET

REPO = Path(__file__).resolve().parents[1]
START_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKSTORE_")}
    env.update(
        BOOKSTORE_ENV="test",
        BOOKSTORE_SECRET_KEY=TEST_SECRET,
        BOOKSTORE_DATABASE_URL=database_url,
        BOOKSTORE_PASSWORD_HASH_TIME_COST="1",
        BOOKSTORE_PASSWORD_HASH_MEMORY_KIB=str(8 * 1024),
        BOOKSTORE_PASSWORD_HASH_PARALLELISM="1",
        BOOKSTORE_LOG_LEVEL="WARNING",
        PYTHONPATH=str(REPO),
    )
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@contextmanager
def running_server(
    database_url: str, log: Path, *, workers: int = 1, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """`bookstore serve` on a free port; its base URL once `/health` answers.

    `env` adds variables to the test settings (`BOOKSTORE_METRICS_TOKEN`, say).

    The server's output goes to `log`, whose tail is in the failure message when the
    server exits or does not answer within a minute.
    """
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "bookstore"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env={**server_env(database_url), **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert process.poll() is None, f"the server exited:\n{log.read_text()[-3000:]}"
            with suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"no answer in time:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        yield base_url
    finally:
        _stop(process)

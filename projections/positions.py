"""Read-your-writes: waiting until a projection has reached a position, without hammering.

Positions reach a waiting reader three ways, fastest first:
- the in-process runner (embedded mode) publishes each batch it commits to the board;
- on PostgreSQL one listener thread per process LISTENs to the runner's NOTIFYs, which
  the server delivers at commit, whichever process ran the batch;
- otherwise (SQLite with other processes running the batches) the waiter polls the
  tracking row with exponential back-off.
The database is re-read now and then even when notifications flow, so a lost one costs at
most that interval, never a wrong answer.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy import Engine

from projections.runner import POSITIONS_CHANNEL
from read_model.tracking import projection_position

log = logging.getLogger(__name__)

FIRST_POLL_SECONDS = 0.005
POLL_CAP_SECONDS = 0.2
SAFETY_POLL_SECONDS = 1.0


class PositionBoard:
    """The highest position of each projection this process has heard of."""

    def __init__(self) -> None:
        self._positions: dict[str, int] = {}
        self._changed = threading.Condition()

    def publish(self, name: str, position: int) -> None:
        with self._changed:
            if position > self._positions.get(name, -1):
                self._positions[name] = position
            self._changed.notify_all()

    def known(self, name: str) -> int:
        with self._changed:
            return self._positions.get(name, 0)

    def wait(self, name: str, position: int, timeout: float) -> bool:
        """Sleep until `name` reaches `position` or `timeout` passes."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._positions.get(name, 0) >= position, timeout=timeout
            )


class NotificationListener:
    """One connection per process LISTENing to positions NOTIFYed by runners anywhere."""

    def __init__(self, engine: Engine, board: PositionBoard) -> None:
        self._engine = engine
        self._board = board
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def listening(self) -> bool:
        return self._ready.is_set()

    def start(self, wait: float = 2.0) -> bool:
        """Start listening (once); True when the LISTEN is in place."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="projection-positions-listener", daemon=True
                )
                self._thread.start()
        return self._ready.wait(wait)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=3)

    def _connect(self) -> Any:
        import psycopg

        url = self._engine.url.set(drivername="postgresql")
        connection = psycopg.connect(
            url.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
        )
        connection.execute(f"LISTEN {POSITIONS_CHANNEL}")
        return connection

    def _run(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                with self._connect() as connection:
                    self._ready.set()
                    backoff = 0.1
                    while not self._stopping.is_set():
                        for notice in connection.notifies(timeout=0.5):
                            self._receive(notice.payload)
            except Exception as error:
                self._ready.clear()
                log.warning("position listener lost its connection (%s); retrying", error)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self._ready.clear()

    def _receive(self, payload: str) -> None:
        name, _, position = payload.rpartition(":")
        if name and position.isdigit():
            self._board.publish(name, int(position))


class PositionWaiter:
    """Answers "where is projection X" and waits for it to reach a position."""

    def __init__(self, engine: Engine, board: PositionBoard | None = None) -> None:
        self.engine = engine
        self.board = board or PositionBoard()
        self._listener = (
            NotificationListener(engine, self.board)
            if engine.dialect.name == "postgresql"
            else None
        )

    def position(self, name: str) -> int:
        """The projection's position as committed in the read database."""
        with self.engine.connect() as connection:
            position = projection_position(connection, name)
        self.board.publish(name, position)
        return position

    def wait_for(self, name: str, position: int, timeout: float = 5.0) -> bool:
        """True once `name` has processed every event up to `position`; False at timeout."""
        if self.board.known(name) >= position:
            return True
        deadline = time.monotonic() + max(0.0, timeout)
        listening = self._listener is not None and self._listener.start(
            wait=min(1.0, max(0.0, timeout))
        )
        # Read after the LISTEN is in place, so no NOTIFY can fall between the two.
        if self.position(name) >= position:
            return True
        interval = FIRST_POLL_SECONDS
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            pause = SAFETY_POLL_SECONDS if listening else interval
            if self.board.wait(name, position, min(remaining, pause)):
                return True
            if self.position(name) >= position:
                return True
            interval = min(interval * 2, POLL_CAP_SECONDS)
            listening = self._listener is not None and self._listener.listening

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()

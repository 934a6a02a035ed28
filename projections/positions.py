"""Read-your-writes: waiting until a projection has reached a position, without hammering.

Clients name store positions (notification ids); projections stand at log positions
(`read_model.tracking.LogPosition`). A wait for store position N first locates event N in
the log (on PostgreSQL its `(tx_id, N)`; on SQLite `(0, N)`), then waits until the
projection's log position has reached it: on PostgreSQL a projection can have passed a
higher id while an event with a lower one, committed later, is still ahead of it, so
comparing ids alone would answer too early.

Log positions reach a waiting reader three ways, fastest first:
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
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from projections.runner import POSITIONS_CHANNEL, parse_payload
from read_model.tracking import LOG_START, LogPosition, projection_progress

log = logging.getLogger(__name__)

FIRST_POLL_SECONDS = 0.005
POLL_CAP_SECONDS = 0.2
SAFETY_POLL_SECONDS = 1.0

# Store position -> the log position a projection must reach to have processed it; None
# while no event at or beyond it has been recorded.
Locator = Callable[[int], LogPosition | None]
# Beyond every real log position: a target that is not located yet is never reached.
UNREACHABLE = LogPosition(2**63 - 1, 2**63 - 1)


def serial_locator(position: int) -> LogPosition:
    """One writer at a time (SQLite): store position N is log position (0, N)."""
    return LogPosition(0, position)


class PositionBoard:
    """The furthest log position of each projection this process has heard of."""

    def __init__(self) -> None:
        self._positions: dict[str, LogPosition] = {}
        self._changed = threading.Condition()

    def publish(self, name: str, position: LogPosition) -> None:
        with self._changed:
            if position > self._positions.get(name, LOG_START):
                self._positions[name] = position
            self._changed.notify_all()

    def known(self, name: str) -> LogPosition:
        with self._changed:
            return self._positions.get(name, LOG_START)

    def wait(self, name: str, target: LogPosition, timeout: float) -> bool:
        """Sleep until `name` reaches `target` or `timeout` passes."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._positions.get(name, LOG_START) >= target, timeout=timeout
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
        parsed = parse_payload(payload)
        if parsed is not None:
            name, log_position, _ = parsed
            self._board.publish(name, log_position)


class PositionWaiter:
    """Answers "where is projection X" and waits for it to reach a position."""

    def __init__(
        self,
        engine: Engine,
        board: PositionBoard | None = None,
        locate: Locator = serial_locator,
    ) -> None:
        self.engine = engine
        self.board = board or PositionBoard()
        self.locate = locate
        self._listener = (
            NotificationListener(engine, self.board)
            if engine.dialect.name == "postgresql"
            else None
        )

    def _progress(self, name: str) -> tuple[int, LogPosition]:
        with self.engine.connect() as connection:
            position, log_position = projection_progress(connection, name)
        if log_position is None:
            # Tracked before the pair was: its runner converts the row on its next batch.
            log_position = self.locate(position) or LOG_START
        self.board.publish(name, log_position)
        return position, log_position

    def position(self, name: str) -> int:
        """The projection's position (the newest store position it has passed), as
        committed in the read database."""
        return self._progress(name)[0]

    def _target(self, position: int) -> LogPosition:
        return self.locate(position) or UNREACHABLE

    def wait_for(self, name: str, position: int, timeout: float = 5.0) -> bool:
        """True once `name` has processed the event at store position `position` (and
        everything before it in the log's read order); False at timeout."""
        target = self._target(position)
        if self.board.known(name) >= target:
            return True
        deadline = time.monotonic() + max(0.0, timeout)
        listening = self._listener is not None and self._listener.start(
            wait=min(1.0, max(0.0, timeout))
        )
        # Read after the LISTEN is in place, so no NOTIFY can fall between the two.
        if self._progress(name)[1] >= target:
            return True
        interval = FIRST_POLL_SECONDS
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            pause = SAFETY_POLL_SECONDS if listening else interval
            if self.board.wait(name, target, min(remaining, pause)):
                return True
            if target == UNREACHABLE:
                target = self._target(position)  # recorded by now?
            if self._progress(name)[1] >= target:
                return True
            interval = min(interval * 2, POLL_CAP_SECONDS)
            listening = self._listener is not None and self._listener.listening

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()

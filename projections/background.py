"""The embedded default: the runner in a background thread of the serving process.

With no broker configured, each commit wakes this thread (through the write application's
commit listeners), which catches every projection up. It also wakes every second on its
own, for events written by other processes (the CLI, other server workers).
"""

from __future__ import annotations

import logging
import threading

from projections.runner import DEFAULT_BATCH_SIZE, Runner

log = logging.getLogger(__name__)

BACKSTOP_SECONDS = 1.0
MAX_ERROR_PAUSE_SECONDS = 30.0


class BackgroundRunner:
    """Runs `catch_up` for every projection whenever woken, until stopped."""

    def __init__(
        self,
        runner: Runner,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        backstop_seconds: float = BACKSTOP_SECONDS,
    ) -> None:
        self.runner = runner
        self.batch_size = batch_size
        self.backstop_seconds = backstop_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._error_pause = 0.0

    def wake(self, position: int | None = None) -> None:
        """A commit listener: cheap, never blocks, coalesces any number of wake-ups."""
        del position
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, name="projections-in-process", daemon=True
        )
        self._thread.start()
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the current batch (its transaction commits or rolls back), then stop."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.backstop_seconds + self._error_pause)
            self._wake.clear()
            if self._stopping.is_set():
                break
            self._run_once()

    def _run_once(self) -> None:
        failed = False
        for name in self.runner.names:
            try:
                self.runner.catch_up_fully(
                    name, batch_size=self.batch_size, should_stop=self._stopping.is_set
                )
            except Exception:
                # A database outage, say: keep the thread alive and back off.
                log.exception("in-process catch-up of %s failed", name)
                failed = True
        if failed:
            self._error_pause = min(max(1.0, self._error_pause * 2), MAX_ERROR_PAUSE_SECONDS)
        else:
            self._error_pause = 0.0

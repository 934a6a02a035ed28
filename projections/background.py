"""The embedded default: the runner in background threads of the serving process.

With no broker configured, each commit wakes these threads (through the write
application's commit listeners), one per projection, so a slow projection never delays the
others; only the threads of projections that read a topic the commit saved are woken (a
cart change wakes none). Each also wakes every second on its own, for events written by
other processes (the CLI, other server workers). On PostgreSQL a commit whose event is
still held above the watermark (an older transaction is open) is polled for by the batch
itself (`runner.py`), and `stop` cuts that wait short.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from projections.runner import DEFAULT_BATCH_SIZE, Runner

log = logging.getLogger(__name__)

BACKSTOP_SECONDS = 1.0
MAX_ERROR_PAUSE_SECONDS = 30.0


class BackgroundRunner:
    """Runs `catch_up` for each projection, in a thread of its own, whenever woken."""

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
        self._wakes = {name: threading.Event() for name in runner.names}
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def wake(self, position: int | None = None, names: Iterable[str] | None = None) -> None:
        """A commit listener: cheap, never blocks, coalesces any number of wake-ups.

        `names`: only these projections (None: all). A wake-up that arrives while a
        catch-up runs is kept, and runs the next one as soon as that one ends.
        """
        del position
        for name in self._wakes if names is None else names:
            wake = self._wakes.get(name)
            if wake is not None:
                wake.set()

    def start(self) -> None:
        if self._threads:
            return
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._run, args=(name,), name=f"projection-{name}", daemon=True)
            for name in self._wakes
        ]
        for thread in self._threads:
            thread.start()
        self.wake()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the current batches (their transactions commit or roll back), then stop."""
        self._stopping.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def _run(self, name: str) -> None:
        wake = self._wakes[name]
        pause = 0.0
        while not self._stopping.is_set():
            if pause:
                # Backing off (a poison event, a database outage): commits must not cut the
                # pause short, or every commit would retry the failure and log it again.
                self._stopping.wait(pause)
            wake.wait(self.backstop_seconds)
            wake.clear()
            if self._stopping.is_set():
                break
            try:
                result = self.runner.catch_up_fully(
                    name, batch_size=self.batch_size, should_stop=self._stopping.is_set
                )
            except Exception:
                # A database outage, say: keep the thread alive and back off.
                log.exception("in-process catch-up of %s failed", name)
                pause = _longer(pause)
                continue
            # Stopped at a poison event: it is retried, but not on every commit.
            pause = _longer(pause) if result.failed else 0.0


def _longer(pause: float) -> float:
    return min(max(1.0, pause * 2), MAX_ERROR_PAUSE_SECONDS)

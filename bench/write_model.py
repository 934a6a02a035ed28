"""The write model's throughput on PostgreSQL, beside plain eventsourcing in the same run.

Baseline: a trivial aggregate with one created event, saved by a bare `Application` on
`eventsourcing.postgres`: the library's own ceiling on this machine (its per-insert table
lock serialises writers). Figure: `Bookstore.place_order`, which loads the cart and its
books and saves the Order, each Book's reservation and the emptied Cart in one atomic save.
Every run gets a fresh database; each measurement is run several times and the median shown.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from adapters.engines import event_store_env
from bench.common import ADMIN_URL, fresh_database
from tests.factories import random_isbn13
from write_model.application import Bookstore
from write_model.cart import Cart
from write_model.context import CommandContext
from write_model.key_index import KeyIndex
from write_model.user import User

THREAD_COUNTS = (1, 4)
BASELINE_SAVES_PER_THREAD = {1: 2000, 4: 600}
ORDERS_PER_THREAD = {1: 600, 4: 250}
CATALOGUE_SIZE = 20
WARM_UP = 20


@dataclass(frozen=True)
class Run:
    """One timed run: how many calls, how long the whole took, and each call's latency."""

    calls: int
    seconds: float
    latencies: list[float]
    conflicts: int = 0

    @property
    def rate(self) -> float:
        return self.calls / self.seconds


def timed_threads(work: list[list[Callable[[], Any]]]) -> tuple[float, list[float]]:
    """Run each thread's calls; all threads start together. Returns wall time, latencies."""
    barrier = threading.Barrier(len(work) + 1)
    latencies: list[list[float]] = [[] for _ in work]
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        barrier.wait()
        try:
            for call in work[index]:
                started = time.perf_counter()
                call()
                latencies[index].append(time.perf_counter() - started)
        except BaseException as error:
            errors.append(error)
            raise

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed, [latency for per_thread in latencies for latency in per_thread]


# ----------------------------------------------------------------- baseline


class Thing(Aggregate):
    """The least an event-sourced save can be: one aggregate, one created event."""

    @event("Created")
    def __init__(self) -> None:
        pass


class Baseline(Application[UUID]):
    name = "baseline"


def baseline_run(threads: int, scale: float) -> Run:
    per_thread = max(1, int(BASELINE_SAVES_PER_THREAD[threads] * scale))
    with fresh_database("bench_write_model") as url:
        app = Baseline(env=event_store_env(url, create_table=True, pool_size=threads + 2))
        try:
            for _ in range(WARM_UP):
                app.save(Thing())
            work = [[lambda: app.save(Thing())] * per_thread for _ in range(threads)]
            seconds, latencies = timed_threads(work)
        finally:
            app.close()
    return Run(calls=per_thread * threads, seconds=seconds, latencies=latencies)


# ----------------------------------------------------------------- place_order


class CountingBookstore(Bookstore):
    """The real application, counting the optimistic-concurrency conflicts it retries."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env)
        self.conflicts = 0
        self._lock = threading.Lock()

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        try:
            return super().save(*objs, **kwargs)
        except IntegrityError:
            with self._lock:
                self.conflicts += 1
            raise


def fill_carts(app: Bookstore, catalogue: list[UUID], count: int, rng: random.Random) -> list[UUID]:
    """Users with a cart of 1-2 books each. Not timed, so saved in bulk, 100 users a save:
    the same aggregates `register_user` and `add_to_cart` would make."""
    user_ids: list[UUID] = []
    for start in range(0, count, 100):
        batch: list[Aggregate] = []
        for _ in range(min(100, count - start)):
            user = User.register(email=f"shopper-{uuid.uuid4().hex}@example.com")
            cart = Cart(user_id=user.id)
            for book_id in rng.sample(catalogue, rng.choice((1, 2))):
                cart.add_item(book_id, rng.randint(1, 3))
            batch += [user, KeyIndex(kind="email", key=user.email, owner_id=user.id), cart]
            user_ids.append(user.id)
        app.save(*batch)
    return user_ids


def place_order_run(threads: int, scale: float) -> Run:
    per_thread = max(1, int(ORDERS_PER_THREAD[threads] * scale))
    rng = random.Random(threads)
    ctx = CommandContext.system("bench")
    with fresh_database("bench_write_model") as url:
        app = CountingBookstore(event_store_env(url, create_table=True, pool_size=threads + 2))
        try:
            catalogue = [
                app.register_book(
                    ctx,
                    title=f"Bench book {n}",
                    author="Bench",
                    isbn=random_isbn13(rng),
                    price=Decimal("12.34"),
                    stock=1_000_000,
                    category="bench",
                ).id
                for n in range(CATALOGUE_SIZE)
            ]
            for user_id in fill_carts(app, catalogue, WARM_UP, rng):
                app.place_order(ctx, user_id)
            shoppers = [fill_carts(app, catalogue, per_thread, rng) for _ in range(threads)]
            app.conflicts = 0

            def order(user_id: UUID) -> Callable[[], Any]:
                return lambda: app.place_order(ctx, user_id)

            work = [[order(u) for u in users] for users in shoppers]
            seconds, latencies = timed_threads(work)
        finally:
            app.close()
    return Run(
        calls=per_thread * threads, seconds=seconds, latencies=latencies, conflicts=app.conflicts
    )


# ----------------------------------------------------------------- report


@dataclass(frozen=True)
class Measurement:
    what: str
    unit: str
    threads: int
    runs: list[Run]

    @property
    def median_rate(self) -> float:
        return statistics.median(r.rate for r in self.runs)

    @property
    def p50_ms(self) -> float:
        return 1000 * statistics.median(x for r in self.runs for x in r.latencies)


def measure(what: str, unit: str, threads: int, runs: int, run: Callable[[], Run]) -> Measurement:
    results = []
    for n in range(runs):
        result = run()
        results.append(result)
        conflicts = f", {result.conflicts} conflicts retried" if result.conflicts else ""
        print(
            f"  {what:<28} {threads} thread(s), run {n + 1}/{runs}: "
            f"{result.rate:8.0f} {unit} ({result.calls} in {result.seconds:.2f} s{conflicts})",
            flush=True,
        )
    return Measurement(what, unit, threads, results)


def report(baselines: dict[int, Measurement], figures: dict[int, Measurement]) -> None:
    header = (
        f"{'measurement':<34}{'threads':>8}{'median':>10}  {'unit':<9}{'p50 ms':>8}{'ratio':>8}"
    )
    print()
    print(header)
    print("-" * len(header))
    for threads in THREAD_COUNTS:
        for m, ratio in (
            (baselines[threads], ""),
            (
                figures[threads],
                f"{figures[threads].median_rate / baselines[threads].median_rate:.2f}",
            ),
        ):
            print(
                f"{m.what:<34}{m.threads:>8}{m.median_rate:>10.0f}  {m.unit:<9}"
                f"{m.p50_ms:>8.2f}{ratio:>8}"
            )
    print()
    print(
        "ratio = place_order orders/s over the baseline's saves/s at the same thread count. "
        "A place_order is 3 loads and one save of 3-4 events (Order.Placed, 1-2 "
        "Book.StockReserved, Cart.Cleared); the baseline is one save of one event."
    )


def main(*, runs: int = 3, scale: float = 1.0) -> None:
    print(f"write model on PostgreSQL ({ADMIN_URL.rpartition('@')[2]}), median of {runs} runs")
    started = time.perf_counter()
    baselines: dict[int, Measurement] = {}
    figures: dict[int, Measurement] = {}
    for threads in THREAD_COUNTS:
        baselines[threads] = measure(
            "baseline: eventsourcing save",
            "saves/s",
            threads,
            runs,
            partial(baseline_run, threads, scale),
        )
        figures[threads] = measure(
            "Bookstore.place_order",
            "orders/s",
            threads,
            runs,
            partial(place_order_run, threads, scale),
        )
    report(baselines, figures)
    print(f"(whole benchmark: {time.perf_counter() - started:.0f} s)")

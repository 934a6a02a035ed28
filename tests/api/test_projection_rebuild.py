"""POST /projections/{name}/rebuild: a blue/green rebuild, with reads served throughout."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from bookstore import bootstrap
from bookstore.bootstrap import Container
from projections.rebuild import RebuildOptions, rebuild_lock_key
from read_model.rebuilds import claim_rebuild
from read_model.tables import book_listing
from tests.api.conftest import assert_problem, new_account
from tests.conftest import make_settings
from tests.factories import book_create_body, book_payload, ctx
from tests.integration.projection_support import rebuild_book_listing, save_books, table_rows
from tests.services import fresh_postgres_database

SEEDED = 400


def seed(container: Container, books: int = SEEDED) -> None:
    save_books(container.write_app, books, events_per_book=2)
    assert container.wait_for_position("book_listing", container.write_app.head(), 30)


def projection(client: TestClient, headers: dict[str, str], name: str) -> dict[str, Any]:
    response = client.get("/projections", headers=headers)
    assert response.status_code == 200, response.text
    (found,) = [item for item in response.json()["items"] if item["name"] == name]
    return dict(found)


def wait_for_version(
    client: TestClient, headers: dict[str, str], name: str, version: int
) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        found = projection(client, headers, name)
        rebuild = found["rebuild"] or {}
        if found["version"] == version and rebuild.get("state") == "done":
            return found
        assert rebuild.get("state") not in ("failed", "cancelled"), found
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


def test_an_admin_rebuilds_a_projection_and_it_serves_the_same_books_from_its_next_version(
    client: TestClient, container: Container
) -> None:
    seed(container, 60)
    admin = new_account(client, container, "admin")
    before = client.get("/books", params={"limit": 100}).json()

    response = client.post("/projections/book_listing/rebuild", headers=admin.headers)

    assert response.status_code == 202, response.text
    assert response.headers["location"] == "/projections"
    body = response.json()
    assert (body["projection"], body["version"], body["from_version"]) == ("book_listing", 2, 1)
    assert body["state"] in ("pending", "loading")
    done = wait_for_version(client, admin.headers, "book_listing", 2)
    assert (done["state"], done["rebuild"]["from_version"]) == ("up_to_date", 1)
    assert done["rebuild"]["events_applied"] >= 120
    assert client.get("/books", params={"limit": 100}).json() == before


def test_rebuilding_a_projection_that_does_not_exist_is_a_404_problem(
    client: TestClient, container: Container
) -> None:
    admin = new_account(client, container, "admin")
    response = client.post("/projections/no_such_thing/rebuild", headers=admin.headers)
    assert_problem(response, 404, "not-found")


@pytest.fixture
def running_rebuild(container: Container) -> Iterator[int]:
    """A rebuild of book_listing recorded and owned by a live process (this test)."""
    rebuilds = container.projections.rebuilds
    requested = rebuilds.request("book_listing", requested_by="test")
    if container.read_engine.dialect.name == "postgresql":
        url = container.read_engine.url.set(drivername="postgresql")
        with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as held:
            held.execute("SELECT pg_advisory_lock(%s)", [rebuild_lock_key("book_listing")])
            yield requested.version
    else:
        with container.read_engine.begin() as connection:
            assert claim_rebuild(connection, "book_listing", requested.version, "test:1")
        yield requested.version


def test_a_second_rebuild_while_one_runs_is_a_409_and_metrics_show_the_running_one(
    client: TestClient, container: Container, running_rebuild: int
) -> None:
    admin = new_account(client, container, "admin")

    response = client.post("/projections/book_listing/rebuild", headers=admin.headers)

    problem = assert_problem(response, 409, "conflict")
    assert (problem["projection"], problem["version"]) == ("book_listing", running_rebuild)
    status = projection(client, admin.headers, "book_listing")
    assert (status["version"], status["rebuild"]["version"]) == (1, running_rebuild)
    assert status["rebuild"]["state"] == "pending"
    metrics = client.get("/metrics", headers=admin.headers).text
    assert (
        f'bookstore_projection_rebuild_progress_ratio{{projection="book_listing",'
        f'version="{running_rebuild}"}}' in metrics
    )


# ---------------------------------------------------------------------------- under load


class Writer(threading.Thread):
    """Keeps sending commands: new books and restocks of the seeded ones."""

    def __init__(self, container: Container, seeded: list[uuid.UUID]) -> None:
        super().__init__(name="test-writer", daemon=True)
        self.app = container.write_app
        self.seeded = seeded
        self.stop = threading.Event()
        self.added: list[tuple[uuid.UUID, int]] = []
        self.errors: list[BaseException] = []

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            try:
                registered = self.app.register_book(ctx(), **book_payload(title=f"Load {n}"))
                self.added.append((registered.id, registered.position))
                self.app.restock_book(ctx(), self.seeded[n % len(self.seeded)], 1)
            except BaseException as error:
                self.errors.append(error)
                return
            n += 1
            time.sleep(0.005)


@pytest.mark.postgres
def test_reads_answer_throughout_a_rebuild_under_write_load_and_it_equals_a_fresh_build() -> None:
    with fresh_postgres_database() as url:
        settings = make_settings(url)
        bootstrap.migrate(settings)
        container = bootstrap.build(settings)
        # Many small steps, so the rebuild overlaps the writes for a while.
        container.projections.rebuilds.options = RebuildOptions(batch_size=150, tail_batch_size=50)
        with TestClient(create_app(container), raise_server_exceptions=False) as client:
            seed(container, 1500)
            seeded = [row["id"] for row in table_rows(container.read_engine, book_listing)]
            admin = new_account(client, container, "admin")
            writer = Writer(container, seeded)
            writer.start()
            try:
                started = client.post("/projections/book_listing/rebuild", headers=admin.headers)
                assert started.status_code == 202, started.text
                pages, during, empty, failures = 0, 0, [], []
                deadline = time.monotonic() + 90
                while True:
                    page = client.get("/books", params={"limit": 20, "sort": "-price"})
                    pages += 1
                    if page.status_code != 200:
                        failures.append(page.text)
                    elif len(page.json()["items"]) != 20 or page.json()["total"] < 1500:
                        empty.append(page.json()["total"])
                    if writer.added and pages % 5 == 0:
                        book_id, position = writer.added[-1]
                        own = client.get(
                            f"/books/{book_id}",
                            headers={"X-Min-Event-Position": str(position)},
                        )
                        if own.status_code != 200:
                            failures.append(own.text)
                    found = projection(client, admin.headers, "book_listing")
                    if found["version"] == 2 and found["rebuild"]["state"] == "done":
                        break
                    during += 1  # this page was read while the rebuild was under way
                    assert found["rebuild"]["state"] not in ("failed", "cancelled"), found
                    assert time.monotonic() < deadline, found
            finally:
                writer.stop.set()
                writer.join(timeout=10)
            assert not writer.errors, writer.errors
            assert not failures, failures[:3]
            assert not empty, empty[:10]
            # The reads overlapped the rebuild (how many depends on the machine's speed).
            assert during >= 1, pages
            assert writer.added  # commands went on during the rebuild

            # Read-your-writes still holds on the new version.
            created = client.post("/books", headers=admin.headers, json=book_create_body())
            assert created.status_code == 201, created.text
            mine = client.get(
                f"/books/{created.json()['id']}",
                headers={"X-Min-Event-Position": created.headers["x-event-position"]},
            )
            assert mine.status_code == 200, mine.text

            assert container.wait_for_position("book_listing", container.write_app.head(), 30)
            listed = table_rows(container.read_engine, book_listing)
        container.close()
        with fresh_postgres_database() as fresh_url:
            assert listed == rebuild_book_listing(url, fresh_url)

"""`bookstore events export`: every format reads back (pyarrow, DuckDB) as the store holds it.

The expected payloads come straight from the stored rows (the library's JSON, its typed
values unwrapped here), not from the export's own decoder, so the two are checked against
each other.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import pytest
from eventsourcing.persistence import StoredEvent
from typer.testing import CliRunner

from adapters.event_columns import ColumnDecoder, fast_path_applies, read_rows
from adapters.event_export import COLUMNS, ExportFormat, export_events
from adapters.event_feed import EventFilter
from bookstore.bootstrap import Container
from bookstore.cli import app as cli
from bookstore.settings import get_settings
from tests.event_log import all_notifications
from tests.factories import ctx, new_book, new_order, new_user
from tests.integration.test_event_versioning import store_v1_registration
from write_model.application import Bookstore

runner = CliRunner()
RESTOCKED = "write_model.book:Book.Restocked"
BOOKKEEPING = {"originator_topic", "timestamp", "metadata", "class_version"}


def _plain(value: Any) -> Any:
    """The library's stored JSON with its typed values unwrapped (money to two places)."""
    if isinstance(value, dict):
        if set(value) == {"_type_", "_data_"}:
            kind, data = value["_type_"], value["_data_"]
            if kind == "decimal_str":
                return str(Decimal(data).quantize(Decimal("0.01")))
            if kind == "uuid_hex":
                return str(UUID(data))
            return _plain(data)
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def expected_rows(app: Bookstore) -> list[dict[str, Any]]:
    """What the export must hold, read from the stored rows themselves."""
    rows = []
    for stored in all_notifications(app):
        state = json.loads(stored.state)
        data = {k: _plain(v) for k, v in state.items() if k not in BOOKKEEPING}
        if stored.topic.endswith("Book.Registered"):
            data.setdefault("language", "en")
        qualified = stored.topic.rpartition(":")[2]
        rows.append(
            {
                "position": stored.id,
                "aggregate_id": str(stored.originator_id),
                "aggregate_type": qualified.partition(".")[0],
                "version": stored.originator_version,
                "type": qualified,
                "data": data,
                "metadata": _plain(state["metadata"]),
            }
        )
    return rows


def some_history(app: Bookstore) -> None:
    """Books, a change, a restock and an order: every kind of value the events hold."""
    books = [new_book(app, stock=5) for _ in range(6)]
    app.change_book(ctx(), books[0], title="Renamed", price=Decimal("7.5"))
    app.restock_book(ctx(), books[1], 4)
    new_order(app, (books[2], 2), (books[3], 1))


def read_back(path: Path, export_format: ExportFormat) -> list[dict[str, Any]]:
    """The file as pyarrow reads it, `data` and `metadata` as objects, timestamps aside."""
    if export_format is ExportFormat.PARQUET:
        table = pq.read_table(path)
    elif export_format is ExportFormat.CSV:
        table = pa_csv.read_csv(
            path,
            convert_options=pa_csv.ConvertOptions(
                column_types={"data": pa.string(), "metadata": pa.string()}
            ),
        )
    else:
        table = pa_json.read_json(path)
    assert table.column_names == list(COLUMNS)
    rows = table.to_pylist()
    for row in rows:
        for column in ("data", "metadata"):
            if isinstance(row[column], str):
                row[column] = json.loads(row[column])
        row.pop("timestamp")
    return rows


@pytest.fixture
def history(container: Container) -> Bookstore:
    some_history(container.write_app)
    return container.write_app


@pytest.mark.parametrize("export_format", list(ExportFormat))
def test_an_export_reads_back_with_pyarrow_equal_to_the_store(
    history: Bookstore, tmp_path: Path, export_format: ExportFormat
) -> None:
    out = tmp_path / f"events.{export_format}"

    summary = export_events(history, out, export_format, batch_size=7)

    expected = expected_rows(history)
    rows = read_back(out, export_format)
    assert summary.events == len(expected) == len(rows)
    if export_format is ExportFormat.JSONL:
        # pyarrow unifies the objects' keys across lines: compare the lines as written.
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        for row in rows:
            row.pop("timestamp")
    assert rows == expected


def test_parquet_holds_typed_columns_and_one_row_group_per_page(
    history: Bookstore, tmp_path: Path
) -> None:
    out = tmp_path / "events.parquet"
    events = len(all_notifications(history))

    export_events(history, out, ExportFormat.PARQUET, batch_size=5)

    parquet = pq.ParquetFile(out)
    assert parquet.metadata.num_rows == events
    assert parquet.metadata.num_row_groups == math.ceil(events / 5)
    schema = parquet.schema_arrow
    assert schema.field("position").type == pa.int64()
    assert schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    stamps = pq.read_table(out, columns=["timestamp"]).column(0).to_pylist()
    assert all(isinstance(stamp, datetime) and stamp.tzinfo is not None for stamp in stamps)


def test_duckdb_reads_the_parquet_and_csv_exports_as_they_are(
    history: Bookstore, tmp_path: Path
) -> None:
    duckdb = pytest.importorskip("duckdb")
    parquet, csv_file = tmp_path / "events.parquet", tmp_path / "events.csv"
    export_events(history, parquet, ExportFormat.PARQUET)
    export_events(history, csv_file, ExportFormat.CSV)
    expected = expected_rows(history)
    registered = sorted(
        row["data"]["title"] for row in expected if row["type"] == "Book.Registered"
    )

    for path in (parquet, csv_file):
        ((count,),) = duckdb.sql(f"SELECT count(*) FROM '{path}'").fetchall()
        titles = duckdb.sql(
            f"SELECT data::JSON ->> 'title' AS title FROM '{path}' "
            "WHERE type = 'Book.Registered' ORDER BY title"
        ).fetchall()
        assert count == len(expected)
        assert [title for (title,) in titles] == registered
    ((total,),) = duckdb.sql(
        f"SELECT sum(CAST(data::JSON ->> 'total' AS DECIMAL(12, 2))) FROM '{parquet}' "
        "WHERE type = 'Order.Placed'"
    ).fetchall()
    placed = [row for row in expected if row["type"] == "Order.Placed"]
    assert total == sum(Decimal(row["data"]["total"]) for row in placed)


def test_after_and_until_export_only_that_range(history: Bookstore, tmp_path: Path) -> None:
    stored = all_notifications(history)
    middle = stored[len(stored) // 2].id
    out = tmp_path / "after.jsonl"

    export_events(history, out, ExportFormat.JSONL, after=middle)
    positions = [json.loads(line)["position"] for line in out.read_text().splitlines()]
    assert positions == [n.id for n in stored if n.id > middle]

    before_all = datetime(2000, 1, 1, tzinfo=UTC)
    summary = export_events(history, out, ExportFormat.JSONL, until=before_all)
    assert summary.events == 0
    assert out.read_text() == ""
    summary = export_events(history, out, ExportFormat.JSONL, until=datetime.now(UTC))
    assert summary.events == len(stored)


def test_an_empty_log_exports_empty_files_that_still_read_back(
    container: Container, tmp_path: Path
) -> None:
    for export_format in ExportFormat:
        out = tmp_path / f"empty.{export_format}"
        assert export_events(container.write_app, out, export_format).events == 0
        if export_format is ExportFormat.PARQUET:
            assert pq.read_table(out).num_rows == 0
        if export_format is ExportFormat.CSV:
            assert out.read_text().strip() == ",".join(COLUMNS)


@pytest.fixture
def cli_database(container: Container, monkeypatch: pytest.MonkeyPatch) -> Iterator[Container]:
    """The CLI finds the container's database through the environment."""
    monkeypatch.setenv("BOOKSTORE_DATABASE_URL", container.settings.database_url)
    monkeypatch.delenv("BOOKSTORE_EVENT_STORE_URL", raising=False)
    monkeypatch.delenv("BOOKSTORE_BROKER_URL", raising=False)
    monkeypatch.setenv("BOOKSTORE_ENV", "development")
    get_settings.cache_clear()
    yield container
    get_settings.cache_clear()


def test_the_cli_exports_each_format_and_prints_a_summary(
    cli_database: Container, tmp_path: Path
) -> None:
    some_history(cli_database.write_app)
    events = len(all_notifications(cli_database.write_app))
    for export_format in ExportFormat:
        out = tmp_path / f"cli.{export_format}"
        result = runner.invoke(
            cli, ["events", "export", "--format", str(export_format), "--out", str(out)]
        )
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert summary["events"] == events
        assert len(read_back(out, export_format)) == events


def test_the_cli_refuses_a_time_that_is_not_rfc_3339(
    cli_database: Container, tmp_path: Path
) -> None:
    result = runner.invoke(
        cli, ["events", "export", "--out", str(tmp_path / "x.jsonl"), "--until", "yesterday"]
    )
    assert result.exit_code == 2
    assert "RFC 3339" in result.output
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize("export_format", list(ExportFormat))
def test_worker_processes_write_the_same_export(
    history: Bookstore, tmp_path: Path, export_format: ExportFormat
) -> None:
    here, there = tmp_path / f"here.{export_format}", tmp_path / f"there.{export_format}"

    export_events(history, here, export_format, batch_size=4)
    export_events(history, there, export_format, batch_size=4, workers=2)

    if export_format is ExportFormat.PARQUET:
        assert pq.read_table(there).equals(pq.read_table(here))
        assert pq.ParquetFile(there).metadata.num_row_groups == (
            pq.ParquetFile(here).metadata.num_row_groups
        )
    else:
        assert there.read_bytes() == here.read_bytes()


def test_direct_decoding_equals_the_mappers_on_every_event(container: Container) -> None:
    """The export decodes most events without the mapper: column for column, the same as
    the mapper gives, for an upcast v1 registration, an admin's actions, a non-ASCII title."""
    app = container.write_app
    some_history(app)
    store_v1_registration(app)
    admin = new_user(app, role="admin")
    new_book(app, title="Les Misérables \u2014 «tome 1»")
    app.restock_book(ctx(actor_id=admin), new_book(app), 2)
    # Numbers no bookstore event holds, as an older or foreign writer might have stored
    # them: a float, and an integer beyond 64 bits (which orjson would read as a float).
    for version, quantity in enumerate(("2.5", "123456789012345678901234567890"), start=1):
        state = (
            '{"timestamp":{"_type_":"datetime_iso","_data_":"2026-01-02T03:04:05+00:00"},'
            f'"quantity":{quantity},"metadata":{{"correlation_id":"x","actor_id":null}}}}'
        )
        app.recorder.insert_events([StoredEvent(uuid4(), version, RESTOCKED, state.encode())])
    rows = read_rows(app, EventFilter(), 1000)
    direct, by_mapper = ColumnDecoder(app), ColumnDecoder(app)
    by_mapper.fast = False

    assert direct.fast
    assert direct.columns(rows) == by_mapper.columns(rows)
    assert direct.by_mapper == 3  # the v1 registration (upcast), and the two odd numbers
    assert by_mapper.by_mapper == len(rows)
    assert len(rows) == len(all_notifications(app))


def test_a_compressed_store_is_decoded_by_the_mapper() -> None:
    compressed = Bookstore(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.popo",
            "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
        }
    )
    plain = Bookstore(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})

    assert not fast_path_applies(compressed)
    assert fast_path_applies(plain)

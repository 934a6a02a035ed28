"""Exporting the event log to a file: JSON Lines, CSV or Parquet, in constant memory.

The log is read a page at a time (`event_feed.stream`), up to the head seen when the export
starts, and each page is decoded by the application's mapper (so every event comes out
upcast to its current version), written, and dropped before the next is read: memory
stays flat whatever the log's size. Parquet gets one row group per page.

The schema, the same in every format (one row per event, in position order):

| column | type | meaning |
|---|---|---|
| `position` | int64 | global store position (notification id), strictly increasing |
| `aggregate_id` | string (UUID) | the aggregate that recorded the event |
| `aggregate_type` | string | `Book`, `User`, `Cart`, `Order`, `KeyIndex`, `AdminRoster` |
| `version` | int64 | the aggregate's version after the event (1 for its first) |
| `type` | string | `<Aggregate>.<Event>`, e.g. `Book.Registered` |
| `timestamp` | timestamp (UTC, µs) | when it was recorded; RFC 3339 text in JSONL and CSV |
| `data` | JSON | the event's fields: money as two-place strings, ids as strings |
| `metadata` | JSON | `correlation_id` and `actor_id` |

In JSON Lines `data` and `metadata` are objects; in CSV and Parquet they are JSON text
(DuckDB: `data::JSON ->> 'title'`; pandas: `json.loads`).

The file is written beside its final name and renamed into place once complete, so an
interrupted export never leaves a file that looks whole.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Protocol
from uuid import UUID

import pyarrow as pa
import pyarrow.parquet as pq
from eventsourcing.application import Application

from adapters.event_feed import (
    JSON_ENCODER,
    EventFilter,
    EventRecord,
    decode_raw,
    head,
    rfc3339,
    stream,
)

COLUMNS = (
    "position",
    "aggregate_id",
    "aggregate_type",
    "version",
    "type",
    "timestamp",
    "data",
    "metadata",
)
PARQUET_SCHEMA = pa.schema(
    [
        pa.field("position", pa.int64(), nullable=False),
        pa.field("aggregate_id", pa.string(), nullable=False),
        pa.field("aggregate_type", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("data", pa.string(), nullable=False),
        pa.field("metadata", pa.string(), nullable=False),
    ],
    metadata={
        "bookstore.schema": "events/1",
        "bookstore.data": "data and metadata are JSON objects as text",
    },
)
DEFAULT_BATCH_SIZE = 10_000

# Called after each page: the position reached and the number of events written so far.
Progress = Callable[[int, int], None]


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: how many events, and the positions it covered."""

    events: int
    after: int
    head: int
    last_position: int


class _Writer(Protocol):
    def write(self, records: Sequence[EventRecord]) -> None: ...

    def close(self) -> None: ...


class _JsonLinesWriter:
    def __init__(self, path: Path) -> None:
        self.file: IO[str] = path.open("w", encoding="utf-8", newline="\n")

    def write(self, records: Sequence[EventRecord]) -> None:
        encode = JSON_ENCODER.encode
        self.file.writelines(
            encode(
                {
                    "position": r.position,
                    "aggregate_id": r.aggregate_id,
                    "aggregate_type": r.aggregate_type,
                    "version": r.version,
                    "type": r.type,
                    "timestamp": rfc3339(r.timestamp),
                    "data": r.data,
                    "metadata": r.metadata,
                }
            )
            + "\n"
            for r in records
        )

    def close(self) -> None:
        self.file.close()


class _CsvWriter:
    def __init__(self, path: Path) -> None:
        self.file: IO[str] = path.open("w", encoding="utf-8", newline="")
        self.rows = csv.writer(self.file)
        self.rows.writerow(COLUMNS)

    def write(self, records: Sequence[EventRecord]) -> None:
        encode = JSON_ENCODER.encode
        self.rows.writerows(
            (
                r.position,
                r.aggregate_id,
                r.aggregate_type,
                r.version,
                r.type,
                rfc3339(r.timestamp),
                encode(r.data),
                encode(r.metadata),
            )
            for r in records
        )

    def close(self) -> None:
        self.file.close()


class _ParquetWriter:
    def __init__(self, path: Path) -> None:
        self.writer = pq.ParquetWriter(str(path), PARQUET_SCHEMA, compression="zstd")

    def write(self, records: Sequence[EventRecord]) -> None:
        if not records:
            return
        encode = JSON_ENCODER.encode
        columns: list[Iterable[Any]] = [
            [r.position for r in records],
            [r.aggregate_id for r in records],
            [r.aggregate_type for r in records],
            [r.version for r in records],
            [r.type for r in records],
            [r.timestamp for r in records],
            [encode(r.data) for r in records],
            [encode(r.metadata) for r in records],
        ]
        batch = pa.record_batch(
            [
                pa.array(values, type=field.type)
                for values, field in zip(columns, PARQUET_SCHEMA, strict=True)
            ],
            schema=PARQUET_SCHEMA,
        )
        self.writer.write_batch(batch, row_group_size=len(records))

    def close(self) -> None:
        self.writer.close()


_WRITERS: dict[ExportFormat, Callable[[Path], _Writer]] = {
    ExportFormat.JSONL: _JsonLinesWriter,
    ExportFormat.CSV: _CsvWriter,
    ExportFormat.PARQUET: _ParquetWriter,
}


def export_events(
    app: Application[UUID],
    out: Path,
    export_format: ExportFormat,
    *,
    after: int = 0,
    until: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> ExportSummary:
    """Write the events after `after` (recorded at or before `until`, if given) to `out`.

    Reads up to the head seen at the start, so a busy store cannot keep it running.
    """
    stop = head(app)
    partial = out.with_name(out.name + ".partial")
    writer = _WRITERS[export_format](partial)
    written = 0
    reached = after
    try:
        for page in stream(app, EventFilter(after=after, stop=stop), page_size=batch_size):
            records = [decode_raw(app, stored) for stored in page]
            if until is not None:
                records = [r for r in records if r.timestamp <= until]
            writer.write(records)
            written += len(records)
            reached = page[-1].id
            if progress is not None:
                progress(reached, written)
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)
        raise
    writer.close()
    os.replace(partial, out)
    if progress is not None:
        progress(max(reached, stop), written)
    return ExportSummary(events=written, after=after, head=stop, last_position=reached)

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
import io
import json
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Protocol, TypeAlias
from uuid import UUID

import pyarrow as pa
import pyarrow.parquet as pq
from eventsourcing.application import Application

from adapters.event_columns import ColumnDecoder, PageColumns, Row, parse_rfc3339, read_rows
from adapters.event_feed import EventFilter, head

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
# A string as `JSON_ENCODER` writes it (no ASCII escaping).
JSON_STRING: Callable[[str], str] = json.encoder.encode_basestring

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


# ----------------------------------------------------------------------------- pages
# A page of events becomes one chunk of the file: text (JSON Lines, CSV) or an Arrow
# record batch (a Parquet row group), built column-wise from the page's `PageColumns`
# (`event_columns.py`: decoded straight from the stored JSON where the mapper would add
# nothing, by the mapper otherwise). Pure functions of the page, so worker processes can
# make them while this process reads the next page and writes the last.

Chunk: TypeAlias = "str | pa.RecordBatch"


def _jsonl_chunk(page: PageColumns) -> str:
    # The line `JSON_ENCODER.encode` makes of the row as a dict, with `data` and `metadata`
    # spliced in already encoded (the same compact encoding), strings escaped alike.
    text = JSON_STRING
    names: dict[str, str] = {}

    def name(value: str) -> str:
        found = names.get(value)
        if found is None:
            found = names[value] = text(value)
        return found

    return "".join(
        [
            f'{{"position":{position},"aggregate_id":{text(aggregate_id)},'
            f'"aggregate_type":{name(aggregate_type)},"version":{version},'
            f'"type":{name(kind)},"timestamp":{text(stamp)},'
            f'"data":{data},"metadata":{metadata}}}\n'
            for position, aggregate_id, aggregate_type, version, kind, stamp, data, metadata in (
                page.rows()
            )
        ]
    )


def _csv_chunk(page: PageColumns) -> str:
    text = io.StringIO()
    csv.writer(text).writerows(page.rows())
    return text.getvalue()


def _parquet_chunk(page: PageColumns) -> pa.RecordBatch:
    # Arrow parses the RFC 3339 text itself (faster than a datetime per row, same instants).
    stamps = pa.array(page.timestamp, type=pa.string()).cast(pa.timestamp("us", tz="UTC"))
    return pa.record_batch(
        [
            pa.array(page.position, type=pa.int64()),
            pa.array(page.aggregate_id, type=pa.string()),
            pa.array(page.aggregate_type, type=pa.string()),
            pa.array(page.version, type=pa.int64()),
            pa.array(page.type, type=pa.string()),
            stamps,
            pa.array(page.data, type=pa.string()),
            pa.array(page.metadata, type=pa.string()),
        ],
        schema=PARQUET_SCHEMA,
    )


_CHUNKS: dict[ExportFormat, Callable[[PageColumns], Chunk]] = {
    ExportFormat.JSONL: _jsonl_chunk,
    ExportFormat.CSV: _csv_chunk,
    ExportFormat.PARQUET: _parquet_chunk,
}


def encode_page(
    decoder: ColumnDecoder,
    rows: Sequence[Row],
    export_format: ExportFormat,
    until: datetime | None,
) -> tuple[Chunk, int]:
    """Decode (and upcast) a page of stored rows and encode it: the chunk, its events."""
    page = decoder.columns(rows)
    if until is not None:
        page = page.keep([stamp <= until for stamp in parse_rfc3339(page.timestamp)])
    return _CHUNKS[export_format](page), len(page)


# ----------------------------------------------------------------------------- workers

# The decoder each worker process uses: the same application class and settings (so the
# same transcodings, compression and encryption), on the in-memory store.
_worker_decoder: ColumnDecoder | None = None


def _start_worker(app_class: type[Application[UUID]], env: dict[str, str]) -> None:
    global _worker_decoder  # noqa: PLW0603 (one per worker process, made once)
    _worker_decoder = ColumnDecoder(
        app_class(env={**env, "PERSISTENCE_MODULE": "eventsourcing.popo"})
    )


def _encode_in_worker(
    rows: Sequence[Row], export_format: ExportFormat, until: datetime | None
) -> tuple[Chunk, int]:
    assert _worker_decoder is not None
    return encode_page(_worker_decoder, rows, export_format, until)


def _chunks(
    app: Application[UUID],
    pages: Iterator[list[Row]],
    export_format: ExportFormat,
    until: datetime | None,
    workers: int,
) -> Iterator[tuple[Chunk, int, int]]:
    """(chunk, events, last position) per page, in order; pages encoded by `workers`
    processes (at most two pages each in flight, so memory stays bounded), or here."""
    if workers < 1:
        decoder = ColumnDecoder(app)
        for page in pages:
            chunk, events = encode_page(decoder, page, export_format, until)
            yield chunk, events, page[-1][0]
        return
    env = {key: str(value) for key, value in app.env.items()}
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(type(app), env),
    ) as pool:
        waiting: deque[tuple[Future[tuple[Chunk, int]], int]] = deque()
        for page in pages:
            waiting.append(
                (pool.submit(_encode_in_worker, page, export_format, until), page[-1][0])
            )
            if len(waiting) >= 2 * workers:
                future, last = waiting.popleft()
                yield (*future.result(), last)
        while waiting:
            future, last = waiting.popleft()
            yield (*future.result(), last)


def _pages(app: Application[UUID], after: int, stop: int, page_size: int) -> Iterator[list[Row]]:
    """Pages of stored rows after `after`, up to `stop`, until none is left."""
    while True:
        page = read_rows(app, EventFilter(after=after, stop=stop), page_size)
        if not page:
            return
        yield page
        after = page[-1][0]
        if len(page) < page_size:
            return


# ----------------------------------------------------------------------------- files


class _Writer(Protocol):
    def write(self, chunk: Chunk) -> None: ...

    def close(self) -> None: ...


class _TextWriter:
    def __init__(self, path: Path, header: str = "") -> None:
        self.file: IO[str] = path.open("w", encoding="utf-8", newline="")
        self.file.write(header)

    def write(self, chunk: Chunk) -> None:
        assert isinstance(chunk, str)
        self.file.write(chunk)

    def close(self) -> None:
        self.file.close()


class _ParquetWriter:
    def __init__(self, path: Path) -> None:
        self.writer = pq.ParquetWriter(str(path), PARQUET_SCHEMA, compression="zstd")

    def write(self, chunk: Chunk) -> None:
        assert isinstance(chunk, pa.RecordBatch)
        if chunk.num_rows:
            self.writer.write_batch(chunk, row_group_size=chunk.num_rows)

    def close(self) -> None:
        self.writer.close()


def _writer(path: Path, export_format: ExportFormat) -> _Writer:
    if export_format is ExportFormat.PARQUET:
        return _ParquetWriter(path)
    if export_format is ExportFormat.CSV:
        return _TextWriter(path, _csv_chunk_header())
    return _TextWriter(path)


def _csv_chunk_header() -> str:
    text = io.StringIO()
    csv.writer(text).writerow(COLUMNS)
    return text.getvalue()


def export_events(
    app: Application[UUID],
    out: Path,
    export_format: ExportFormat,
    *,
    after: int = 0,
    until: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = 0,
    progress: Progress | None = None,
) -> ExportSummary:
    """Write the events after `after` (recorded at or before `until`, if given) to `out`.

    Reads up to the head seen at the start, so a busy store cannot keep it running. With
    `workers` > 0, that many processes decode and encode pages while this one reads and
    writes (same order, same bytes).
    """
    stop = head(app)
    partial = out.with_name(out.name + ".partial")
    writer = _writer(partial, export_format)
    written = 0
    reached = after
    pages = _pages(app, after, stop, batch_size)
    try:
        for chunk, events, last in _chunks(app, pages, export_format, until, workers):
            writer.write(chunk)
            written += events
            reached = last
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

"""Stored events as the export's columns, decoded without the mapper where it adds nothing.

The mapper (`event_feed.decode_raw`) builds a domain event object per stored event, turns
every typed value into its Python type (Decimal, UUID, datetime), and the export then turns
them back into JSON text. For a stored event that needs no upcasting, on a store with
neither cipher nor compressor and the library's own JSON transcoder, that round trip is the
identity on everything but the typed values, so the state is parsed here (orjson), its typed
values unwrapped straight to what `event_feed.json_default` would make of them (money to
two places, ids dashed, times RFC 3339), and `data` written back as the export's JSON
(orjson writes the same text as `JSON_ENCODER` for everything but floats, which go to the
mapper). Two to three times as fast as the mapper, and the same bytes.

Everything else goes through the mapper, one event at a time: an event whose stored class
version is older than its class (it must be upcast), a topic that does not resolve, a typed
value of another name or shape, or any failure of the fast path (the mapper then decodes it
or raises exactly as it always did). `tests/integration/test_export.py` compares the
export with the stored rows, and a v1 `Book.Registered` is checked to come out as v2.

On PostgreSQL the rows are read here with one plain keyset query per page, in binary, the
ids already as text: the same pages and bounds as `event_feed.read_page` (position order, up
to the head seen at the start), without building a `Notification` per row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, NamedTuple, TypeAlias
from uuid import UUID

import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    Notification,
    UUIDAsHex,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import resolve_topic
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from adapters.event_feed import (
    CENT,
    JSON_ENCODER,
    EventFilter,
    decode_raw,
    read_page,
    rfc3339,
    type_of_topic,
)

# A stored event as read for the export: position, aggregate id (text), version, topic,
# stored state. Plain tuples: cheap to build, and to send to a worker process.
Row: TypeAlias = tuple[int, str, int, str, bytes]

# The typed values the library's default transcodings write, by the name stored with them.
_LIBRARY_TRANSCODINGS = {
    "uuid_hex": UUIDAsHex,
    "decimal_str": DecimalAsStr,
    "datetime_iso": DatetimeAsISO,
}
# What the state holds besides the event's own fields (the mapper's bookkeeping).
_NOT_DATA = ("timestamp", "originator_topic", "metadata")
# Distinct money strings and metadata remembered per decoder (they repeat); forgotten when full.
_CACHED = 100_000
_UTC_SUFFIX = "+00:00"


class _ForTheMapper(Exception):  # noqa: N818 (a signal, not an error)
    """This event (or one of its values) is the mapper's to decode."""


class _Topic(NamedTuple):
    type: str
    aggregate_type: str
    class_version: int


@dataclass
class PageColumns:
    """One page of events as the export's columns: `timestamp` as RFC 3339 text in UTC,
    `data` and `metadata` as JSON text (the export's encoding)."""

    position: list[int] = field(default_factory=list)
    aggregate_id: list[str] = field(default_factory=list)
    aggregate_type: list[str] = field(default_factory=list)
    version: list[int] = field(default_factory=list)
    type: list[str] = field(default_factory=list)
    timestamp: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.position)

    def rows(self) -> Iterator[tuple[int, str, str, int, str, str, str, str]]:
        """The page row by row, in the export's column order."""
        return zip(
            self.position,
            self.aggregate_id,
            self.aggregate_type,
            self.version,
            self.type,
            self.timestamp,
            self.data,
            self.metadata,
            strict=True,
        )

    def keep(self, wanted: Sequence[bool]) -> PageColumns:
        """The rows where `wanted` is true, in order."""
        picked = PageColumns()
        for name in _COLUMN_NAMES:
            getattr(picked, name).extend(
                value for value, keep in zip(getattr(self, name), wanted, strict=True) if keep
            )
        return picked


_COLUMN_NAMES = tuple(PageColumns.__dataclass_fields__)


def fast_path_applies(app: Application[UUID]) -> bool:
    """Whether stored states are the library's plain JSON, decoded as the mapper would."""
    mapper = app.mapper
    transcoder = mapper.transcoder
    return (
        type(mapper) is Mapper
        and mapper.cipher is None
        and mapper.compressor is None
        and type(transcoder) is JSONTranscoder
    )


class ColumnDecoder:
    """Decodes pages of rows into `PageColumns`: directly when it can, else by the mapper."""

    def __init__(self, app: Application[UUID]) -> None:
        self.app = app
        self.fast = fast_path_applies(app)
        transcoder = app.mapper.transcoder
        names = transcoder.names if isinstance(transcoder, JSONTranscoder) else {}
        # Only the names whose transcoding is the library's own are unwrapped here.
        self.unwrap: dict[str, Callable[[str], str]] = {}
        unwrappers: dict[str, Callable[[str], str]] = {
            "uuid_hex": _dashed,
            "decimal_str": self._money,
            "datetime_iso": _rfc3339_text,
        }
        for name, transcoding in _LIBRARY_TRANSCODINGS.items():
            if type(names.get(name)) is transcoding:
                self.unwrap[name] = unwrappers[name]
        self.topics: dict[str, _Topic | None] = {}
        self.money: dict[str, str] = {}
        self.metadata: dict[tuple[tuple[str, Any], ...], str] = {}
        self.encode = JSON_ENCODER.encode
        # How many events went through the mapper (upcast, or not decodable directly).
        self.by_mapper = 0

    # ------------------------------------------------------------------ values

    def _money(self, text: str) -> str:
        found = self.money.get(text)
        if found is None:
            if len(self.money) >= _CACHED:
                self.money.clear()
            found = str(Decimal(text).quantize(CENT, rounding=ROUND_HALF_EVEN))
            self.money[text] = found
        return found

    def _plain(self, value: Any) -> Any:
        """A decoded JSON value with the library's typed values unwrapped (as `jsonable`)."""
        kind = type(value)
        if kind is dict:
            if len(value) == 2 and "_type_" in value and "_data_" in value:
                unwrap = self.unwrap.get(value["_type_"])
                data = value["_data_"]
                if unwrap is None or type(data) is not str:
                    raise _ForTheMapper
                return unwrap(data)
            return {key: self._plain(item) for key, item in value.items()}
        if kind is list:
            return [self._plain(item) for item in value]
        if kind is float:
            raise _ForTheMapper  # see `_fast`
        return value

    def _metadata(self, metadata: Any) -> str:
        if type(metadata) is not dict:
            raise _ForTheMapper
        # Events of one save share their metadata: encode it once. Only str and None values
        # make the key (True == 1 as a key would mix up two encodings).
        if all(type(value) is str or value is None for value in metadata.values()):
            key = tuple(metadata.items())
            found = self.metadata.get(key)
            if found is None:
                if len(self.metadata) >= _CACHED:
                    self.metadata.clear()
                found = self.metadata[key] = self.encode(metadata)
            return found
        return self.encode(self._plain(metadata))

    def _topic(self, topic: str) -> _Topic | None:
        try:
            return self.topics[topic]
        except KeyError:
            pass
        found: _Topic | None
        try:
            cls = resolve_topic(topic)
        except Exception:  # the mapper will raise its own error for it
            found = None
        else:
            name = type_of_topic(topic)
            found = _Topic(name, name.partition(".")[0], getattr(cls, "class_version", 1))
        self.topics[topic] = found
        return found

    # ------------------------------------------------------------------ rows

    def _fast(self, row: Row) -> tuple[str, str, str, str, str]:
        """(type, aggregate type, timestamp, data, metadata) of a row, or `_ForTheMapper`."""
        _, _, _, topic, state = row
        known = self._topic(topic)
        if known is None or not self.fast:
            raise _ForTheMapper
        doc = orjson.loads(state)
        if type(doc) is not dict or doc.pop("class_version", 1) < known.class_version:
            raise _ForTheMapper
        stamp = doc.pop("timestamp")
        doc.pop("originator_topic", None)
        metadata = self._metadata(doc.pop("metadata", None) or {})
        if "originator_id" in doc or "originator_version" in doc:
            raise _ForTheMapper  # the mapper would overwrite them: leave it to it
        if (
            type(stamp) is not dict
            or len(stamp) != 2
            or self.unwrap.get(stamp.get("_type_", "")) is not _rfc3339_text
            or type(stamp.get("_data_")) is not str
        ):
            raise _ForTheMapper
        timestamp = _rfc3339_text(stamp["_data_"])
        plain = self._plain
        for key, value in doc.items():
            kind = type(value)
            if kind is dict or kind is list:
                doc[key] = plain(value)
            elif kind is float:
                # orjson reads an integer beyond 64 bits as a float, and writes floats
                # otherwise than `json` does: a float (none of the bookstore's events has
                # one) leaves the event to the mapper.
                raise _ForTheMapper
        # With no floats and only str keys, orjson writes exactly `JSON_ENCODER`'s text.
        data = orjson.dumps(doc).decode()
        return known.type, known.aggregate_type, timestamp, data, metadata

    def _by_mapper(self, row: Row) -> tuple[str, str, str, str, str, str]:
        """(aggregate id, type, aggregate type, timestamp, data, metadata) by the mapper."""
        position, aggregate_id, version, topic, state = row
        self.by_mapper += 1
        try:
            originator: UUID | str = UUID(aggregate_id)
        except ValueError:
            originator = aggregate_id
        record = decode_raw(
            self.app,
            Notification(
                id=position,
                originator_id=originator,
                originator_version=version,
                topic=topic,
                state=state,
            ),
        )
        return (
            record.aggregate_id,
            record.type,
            record.aggregate_type,
            rfc3339(record.timestamp),
            self.encode(record.data),
            self.encode(record.metadata),
        )

    def columns(self, rows: Sequence[Row]) -> PageColumns:
        """The page's columns, in row order."""
        page = PageColumns()
        position, aggregate_ids, versions = page.position, page.aggregate_id, page.version
        types, aggregate_types, stamps = page.type, page.aggregate_type, page.timestamp
        data, metadata = page.data, page.metadata
        fast = self._fast
        for row in rows:
            try:
                kind, aggregate_type, stamp, fields, meta = fast(row)
                aggregate_id = row[1]
            except Exception:  # the mapper decodes it, or raises its own error
                aggregate_id, kind, aggregate_type, stamp, fields, meta = self._by_mapper(row)
            position.append(row[0])
            aggregate_ids.append(aggregate_id)
            versions.append(row[2])
            types.append(kind)
            aggregate_types.append(aggregate_type)
            stamps.append(stamp)
            data.append(fields)
            metadata.append(meta)
        return page


def _dashed(hex_text: str) -> str:
    return str(UUID(hex_text))


def _rfc3339_text(iso: str) -> str:
    """`DatetimeAsISO`'s text as `rfc3339` gives it: UTC with a `Z`. The library writes
    `isoformat()` of an aware time; in UTC only the suffix changes."""
    if len(iso) in (25, 32) and iso[10] == "T" and iso.endswith(_UTC_SUFFIX):
        return iso[:-6] + "Z"
    return rfc3339(datetime.fromisoformat(iso))


def parse_rfc3339(stamps: Sequence[str]) -> list[datetime]:
    """The `timestamp` column as aware datetimes (for `--until`)."""
    return [datetime.fromisoformat(stamp) for stamp in stamps]


# ----------------------------------------------------------------------------- reading


def read_rows(app: Application[UUID], selection: EventFilter, limit: int) -> list[Row]:
    """Up to `limit` stored events after `selection.after` (to `selection.stop`), in order."""
    recorder = app.recorder
    plain = not selection.topics and selection.aggregate_id is None
    if isinstance(recorder, PostgresApplicationRecorder) and plain:
        return _postgres_rows(recorder, selection, limit)
    return [
        (n.id, _id_text(n.originator_id), n.originator_version, n.topic, n.state)
        for n in read_page(app, selection, limit)
    ]


def _id_text(originator_id: UUID | str) -> str:
    """The id as the mapper gives it for a UUID-keyed aggregate (SQLite stores hex)."""
    if isinstance(originator_id, UUID):
        return str(originator_id)
    try:
        return str(UUID(originator_id))
    except ValueError:
        return originator_id


def _postgres_rows(
    recorder: PostgresApplicationRecorder, selection: EventFilter, limit: int
) -> list[Row]:
    # As `event_feed._postgres`: an index scan in id order that stops at the limit, `stop`
    # applied to the rows (a bound in the SQL makes PostgreSQL sort the remaining range).
    # Binary results (bytea undecoded) and the uuid as text: three times faster to load.
    statement = SQL(
        "SELECT notification_id, originator_id::text, originator_version, topic, state "
        "FROM {events} WHERE notification_id > %(after)s "
        "ORDER BY notification_id LIMIT %(limit)s"
    ).format(events=Identifier(recorder.datastore.schema, recorder.events_table_name))
    params = {"after": selection.after, "limit": limit}
    with (
        recorder.datastore.get_connection() as connection,
        connection.cursor(row_factory=tuple_row, binary=True) as cursor,
    ):
        cursor.execute(statement, params, prepare=False)
        rows: list[Row] = cursor.fetchall()
    stop = selection.stop
    if stop is not None and rows and rows[-1][0] > stop:
        rows = [row for row in rows if row[0] <= stop]
    return rows

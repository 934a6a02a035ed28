"""Reading a catalogue file as a stream of rows: CSV with a header, or a JSON array.

Both readers take a binary file and yield `RawRow`s one at a time, holding one row (and a
read buffer) in memory whatever the file's size, so the HTTP route and the
`bookstore books import` command can check a 50 MB file and then read it again to apply it.
They only split the file into rows; `write_model.book_rows` judges the values.

- **CSV** (RFC 4180 as Python's `csv` reads it), UTF-8 with or without a BOM. The first
  non-blank record is the header: names are matched without case or surrounding blanks,
  all six of `title,author,isbn,price,stock,category` must be there (else
  `MissingColumnsError`), other columns are ignored, and a column named twice is refused.
  Blank records are skipped and not counted. A byte that is not UTF-8 makes a lone
  surrogate in its field (`surrogateescape`), which the row check refuses: one bad row,
  not a failed file. A record with another number of fields than the header is a bad row.
- **JSON**: an array of objects, parsed one element at a time with the standard library's
  decoder (`raw_decode` on a sliding buffer), numbers as exact `Decimal`s. Anything but an
  array is `NotAnArrayError`; bytes that are not JSON, or not UTF-8, are `MalformedJsonError`
  (also when the array breaks off after good rows: its end cannot be trusted). An element
  that is not an object is a bad row. An escaped lone surrogate (`"\\ud800"`) is kept as
  such, for the row check to refuse, rather than silently replaced.

Rows count from 1 at the first data row: the CSV header is not a row; in JSON a row is its
index + 1.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
from collections.abc import Generator
from decimal import Decimal
from typing import IO, Literal

from write_model.book_rows import FIELDS, RawRow, printable

Format = Literal["csv", "json"]
RowStream = Generator[RawRow, None, None]

CHUNK_CHARS = 64 * 1024
# Far above any book a create body can hold (1,000 characters of text and four numbers,
# escaped); an element larger than this is refused rather than buffered.
MAX_JSON_ELEMENT_CHARS = 1024 * 1024
# Python's csv refuses fields above this; a title is at most 500 characters anyway.
CSV_FIELD_LIMIT = csv.field_size_limit()
# Integers longer than this parse as Decimal: never a 4,300-digit int() conversion.
_LONG_INT_DIGITS = 30
_BOM = codecs.BOM_UTF8
_WHITESPACE = " \t\r\n"


class BookFileError(Exception):
    """The file as a whole cannot be read as a catalogue."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MissingColumnsError(BookFileError):
    """The CSV header lacks a required column (or names one twice)."""

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing


class NotAnArrayError(BookFileError):
    """The JSON body is valid JSON but not an array of books."""


class MalformedJsonError(BookFileError):
    """The JSON body does not parse (or is not UTF-8)."""


def sniff_format(binary: IO[bytes]) -> Format:
    """`json` when the first non-blank byte opens a JSON array or object, else `csv`.

    For uploads and files whose type was not said; the file is rewound.
    """
    start = binary.tell()
    head = binary.read(4096)
    binary.seek(start)
    head = head.removeprefix(_BOM).lstrip()
    return "json" if head[:1] in (b"[", b"{") else "csv"


def read_rows(binary: IO[bytes], file_format: Format) -> RowStream:
    """The data rows of `binary` (left open), read from where it stands."""
    if file_format == "json":
        return read_json_rows(binary)
    return read_csv_rows(binary)


def _leave_open(text: io.TextIOWrapper) -> None:
    """Let go of the caller's file without closing it: it is read twice."""
    with contextlib.suppress(ValueError):  # the caller closed it already
        text.detach()


# ----------------------------------------------------------------------------- CSV


def _header_columns(record: list[str]) -> dict[str, int]:
    names = [printable(name.strip().lower(), 60) for name in record]
    twice = sorted({name for name in names if name in FIELDS and names.count(name) > 1})
    if twice:
        raise MissingColumnsError(f"The header names {', '.join(twice)} more than once", twice)
    missing = [name for name in FIELDS if name not in names]
    if missing:
        raise MissingColumnsError(
            f"The header lacks {', '.join(missing)}; it must have "
            f"{','.join(FIELDS)} (found: {printable(','.join(names), 200) or 'nothing'})",
            missing,
        )
    return {name: names.index(name) for name in FIELDS}


def read_csv_rows(binary: IO[bytes]) -> RowStream:
    """The data rows of a CSV file with a header; see the module's notes."""
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        records = csv.reader(text, strict=False)
        columns: dict[str, int] | None = None
        width = 0
        number = 0
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except csv.Error as error:
                if columns is None:
                    raise MissingColumnsError(f"The header cannot be read: {error}", []) from None
                number += 1
                yield RawRow(number, None, f"cannot be read as CSV: {error}")
                continue
            if not any(cell.strip() for cell in record):
                continue
            if columns is None:
                columns = _header_columns(record)
                width = len(record)
                continue
            number += 1
            if len(record) != width:
                yield RawRow(number, None, f"has {len(record)} fields; the header has {width}")
                continue
            cells = {name: record[index] for name, index in columns.items()}
            yield RawRow(number, cells, textual=True)
        if columns is None:
            raise MissingColumnsError(
                f"The file is empty; its first line must be the header {','.join(FIELDS)}",
                list(FIELDS),
            )
    finally:
        _leave_open(text)


# ----------------------------------------------------------------------------- JSON


def _parse_int(digits: str) -> int | Decimal:
    return int(digits) if len(digits) <= _LONG_INT_DIGITS else Decimal(digits)


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(
    parse_float=Decimal, parse_int=_parse_int, parse_constant=_refuse_constant
)


class _Buffer:
    """A window on a text stream: `text[pos:]` is unread; `more()` appends a chunk."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.text = ""
        self.pos = 0
        self.eof = False

    def more(self) -> bool:
        """Read another chunk, dropping what was consumed; False at the end of the file."""
        if self.eof:
            return False
        try:
            chunk = self.stream.read(CHUNK_CHARS)
        except UnicodeDecodeError:
            raise MalformedJsonError("The body is not UTF-8") from None
        self.text = self.text[self.pos :] + chunk
        self.pos = 0
        self.eof = not chunk
        return bool(chunk)

    def next_char(self) -> str:
        """Skip white space; the next character ('' at the end of the file)."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def element(self) -> object:
        """Decode the JSON value at `pos`, reading more until it is whole."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as error:
                if self.eof:
                    raise MalformedJsonError(f"The body is not valid JSON: {error.msg}") from None
                if len(self.text) - self.pos > MAX_JSON_ELEMENT_CHARS:
                    raise MalformedJsonError(self._too_large) from None
                self.more()
                continue
            except ValueError as error:  # NaN, Infinity
                raise MalformedJsonError(f"The body is not valid JSON: {error}") from None
            if end - self.pos > MAX_JSON_ELEMENT_CHARS:
                raise MalformedJsonError(self._too_large)
            # A number at the end of the buffer may go on in the next chunk.
            if end == len(self.text) and not self.eof:
                self.more()
                continue
            self.pos = end
            return value

    _too_large = (
        f"The body is not valid JSON, or an element of the array is larger than "
        f"{MAX_JSON_ELEMENT_CHARS} characters"
    )


def read_json_rows(binary: IO[bytes]) -> RowStream:
    """The elements of a JSON array, one at a time; see the module's notes."""
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="strict")
    try:
        buffer = _Buffer(text)
        first = buffer.next_char()
        if first != "[":
            if first == "":
                raise MalformedJsonError("The body is empty; send a JSON array of books")
            buffer.element()  # a parse error says more than "not an array"
            raise NotAnArrayError("The body must be a JSON array of books")
        buffer.pos += 1
        number = 0
        if buffer.next_char() == "]":
            buffer.pos += 1
        else:
            while True:
                buffer.next_char()  # the decoder takes no leading white space
                value = buffer.element()
                number += 1
                if isinstance(value, dict):
                    yield RawRow(number, value)
                else:
                    yield RawRow(number, None, "must be a JSON object of book fields")
                separator = buffer.next_char()
                buffer.pos += 1
                if separator == "]":
                    break
                if separator != ",":
                    raise MalformedJsonError(
                        f"The body is not valid JSON: expected ',' or ']' after row {number}"
                    )
        if buffer.next_char() != "":
            raise MalformedJsonError("The body is not valid JSON: extra data after the array")
    finally:
        _leave_open(text)

"""A client cannot write a line of its own into the text log (issue 9 item 10).

A request path with `%0A` (a newline once decoded), or a control character anywhere else
that reaches a log field, would otherwise start a new line that reads like a record of its
own. In the text format, each record is one line; what a client sent stays visibly escaped.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from bookstore.logging_setup import TEXT_FORMAT, CorrelationIdFilter, TextFormatter

FORGED = "2026-11-30 12:00:00,000 INFO bookstore.security [-] admin password reset by root"
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    """Every record of the process, as the text format writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter(TEXT_FORMAT))
    handler.addFilter(CorrelationIdFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_a_newline_in_the_request_path_cannot_forge_a_log_line(
    client: TestClient, text_log: io.StringIO
) -> None:
    client.get("/books%0A" + FORGED.replace(" ", "%20"))

    lines = _lines(text_log)
    assert not [line for line in lines if line.startswith(FORGED[:23])]
    request_lines = [line for line in lines if "bookstore.http" in line and "GET" in line]
    assert len(request_lines) == 1
    assert "\\n" + FORGED in request_lines[0]


def test_every_line_of_a_record_with_control_characters_is_its_own_record_or_indented(
    text_log: io.StringIO,
) -> None:
    log = logging.getLogger("test.injection")
    try:
        raise ValueError("bad input\r\n" + FORGED + "\x1b[2J\u2028" + FORGED)
    except ValueError:
        log.exception("failed on %s", "x\n" + FORGED)

    lines = _lines(text_log)
    assert RECORD_START.match(lines[0])
    # The message stays on its line; the traceback's lines are indented beneath it.
    assert "x\\n" + FORGED in lines[0]
    assert all(line.startswith(" ") for line in lines[1:]), lines
    assert not any("\x1b" in line or "\r" in line or "\u2028" in line for line in lines)

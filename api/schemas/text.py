"""Text that every layer below can store: the shared string types of request bodies.

JSON may spell a lone UTF-16 surrogate (`"\\ud800"`); Python decodes it into a `str` that
no UTF-8 encoder accepts, so it would pass validation and fail later, deep down (the event
encoder, a database driver, the password hasher), as a 500. `Text` refuses it up front
with a 422 naming the field. Use `Text` (or `OneLineText`) for every string field of every
request body, in place of plain `str`; `tests/api/test_auth_hardening.py` checks that no
body field of any route lets a lone surrogate through.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

# A `str` decoded from JSON holds a surrogate code point only when it stood alone: a
# proper pair (`"\ud83d\ude00"`) is decoded into the one character it encodes.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Names and search strings are one line of text: no NUL (PostgreSQL refuses it in text),
# no other C0 control character, no DEL.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]*$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def valid_unicode(value: str) -> str:
    """`value` if it is encodable text, else a ValueError (422) saying why."""
    if _SURROGATE.search(value):
        msg = "must be valid Unicode text: no lone surrogate (such as \\ud800)"
        raise ValueError(msg)
    return value


def one_line(value: str) -> str:
    """`value` if it has no control character, else a ValueError (422) saying why."""
    if _CONTROL.search(value):
        msg = "must not contain control characters (such as NUL, tab or newline)"
        raise ValueError(msg)
    return value


Text = Annotated[str, AfterValidator(valid_unicode)]
"""Any text a body may carry (a password, a token): valid Unicode, nothing more."""

# A validator (for a clear message) plus the pattern (so the OpenAPI schema says it too).
OneLineText = Annotated[
    Text,
    AfterValidator(one_line),
    Field(json_schema_extra={"pattern": NO_CONTROL_CHARACTERS}),
]
"""A name or a search string: valid Unicode on one line, no control characters."""

"""Structured logs that carry the request's correlation id on every line.

The id lives in a context variable set by the API's request-id middleware; a logging
filter copies it onto each record, so a line written anywhere while serving a request (a
route, the write model, the thread pool) names the request without passing it around.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from bookstore.settings import Settings

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()
    | {"message", "asctime", "correlation_id", "color_message", "taskName"}
)


# SQLAlchemy puts a failed statement's bound values into the exception text; they can hold
# a password hash or a token digest. Logged tracebacks keep the SQL but not the values.
_SQL_PARAMETERS = re.compile(r"^\[parameters: .*\]$", re.MULTILINE)
HIDDEN_PARAMETERS = "[parameters: hidden]"


def redact(text: str) -> str:
    """`text` without the bound SQL parameters an exception message may carry."""
    return _SQL_PARAMETERS.sub(HIDDEN_PARAMETERS, text) if "[parameters: " in text else text


class CorrelationIdFilter(logging.Filter):
    """Stamp each record with the correlation id of the request being served (or "-")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "correlation_id", None):
            record.correlation_id = correlation_id_var.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: easy for log shippers, no multi-line tracebacks."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "correlation_id": getattr(record, "correlation_id", None) or "-",
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


# What could break a record's line or hide what it says on a terminal: C0 and C1 control
# characters (newline, carriage return, escape sequences), DEL, the Unicode line and
# paragraph separators, and the bidirectional overrides that reorder what a reader sees.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Lines of a traceback go beneath their record, indented: only a record starts a line.
CONTINUATION_INDENT = "    "


def _escaped(match: re.Match[str]) -> str:
    character = match.group()
    code = ord(character)
    return _NAMED_ESCAPES.get(character) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape_controls(text: str) -> str:
    """`text` on one line: each control or separator character written as its escape."""
    return text if text.isprintable() else _UNSAFE.sub(_escaped, text)


class TextFormatter(logging.Formatter):
    """The plain text format: one line per record, whatever a client sent.

    Every field is escaped (a request path with `%0A` would otherwise end the line and
    start one that reads like a record of its own); a traceback follows on lines of its own,
    each indented and escaped, so a line at the left margin is always a real record. Bound
    SQL parameters are hidden, as in JSON.
    """

    def format(self, record: logging.LogRecord) -> str:
        # A copy: other handlers (the JSON one, pytest's) see the record as it was.
        safe = logging.makeLogRecord(vars(record))
        safe.msg, safe.args = redact(record.getMessage()), None
        safe.exc_info, safe.exc_text, safe.stack_info = None, None, None
        for key, value in vars(safe).items():
            if isinstance(value, str):
                setattr(safe, key, escape_controls(value))
        text = super().format(safe)
        details = []
        if record.exc_info:
            details.append(self.formatException(record.exc_info))
        elif record.exc_text:
            details.append(record.exc_text)
        if record.stack_info:
            details.append(self.formatStack(record.stack_info))
        for detail in details:
            for line in redact(detail).split("\n"):
                text += f"\n{CONTINUATION_INDENT}{escape_controls(line)}"
        return text


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"


def logging_config(settings: Settings) -> dict[str, Any]:
    """A `dictConfig` for the whole process, uvicorn's loggers included.

    Passed to uvicorn as `log_config`, so that every worker process it spawns applies it.
    """
    formatter: dict[str, Any] = (
        {"()": "bookstore.logging_setup.JsonFormatter"}
        if settings.log_format == "json"
        else {"()": "bookstore.logging_setup.TextFormatter", "fmt": TEXT_FORMAT}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "default",
        "filters": ["correlation_id"],
        "stream": "ext://sys.stderr",
    }
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"correlation_id": {"()": "bookstore.logging_setup.CorrelationIdFilter"}},
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            # uvicorn installs its own handlers unless told otherwise: route them to ours.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            # The API's middleware logs each request with its id and duration instead.
            "uvicorn.access": {"handlers": [], "level": level, "propagate": False},
        },
    }


def configure_logging(settings: Settings) -> None:
    """Apply `logging_config` to this process (CLI commands, workers)."""
    logging.config.dictConfig(logging_config(settings))

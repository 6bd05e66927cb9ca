"""Logging setup for the CLI and the service: JSON lines when stdout is not a terminal (journald),
short human lines on a terminal. Called once by `cli.main`. Values passed as `extra=` become JSON
fields (employee_id, counts, event_type, ...), so nothing structured hides in the message text.
Lines written to the journal start with the syslog `<N>` priority, which journald reads
(SyslogLevelPrefix=, on by default), so `journalctl -p warning` works. Never formats a secret,
and `RedactingFilter` removes any remembered secret that reached a record anyway.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from reconciler.redact import redact

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# syslog priorities (RFC 5424), as journald reads them from a `<N>` line prefix.
_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class RedactingFilter(logging.Filter):
    """Second net behind api.py: a secret an upstream echoed never reaches a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True  # a broken format string: the handler reports it, as without a filter
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        for name, value in list(vars(record).items()):
            if name not in _STANDARD and isinstance(value, str):
                setattr(record, name, redact(value))
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record._redacted_error = redact(repr(record.exc_info[1]))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `with_priority` prefixes `<N>` for journald."""

    def __init__(self, *, with_priority: bool = False) -> None:
        super().__init__()
        self.with_priority = with_priority

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(
            {
                key: value
                for key, value in vars(record).items()
                if key not in _STANDARD and not key.startswith("_") and key not in line
            }
        )
        if record.exc_info:
            line["error"] = getattr(record, "_redacted_error", None) or repr(record.exc_info[1])
        text = json.dumps(line, ensure_ascii=False, default=str)
        return f"<{syslog_priority(record.levelno)}>{text}" if self.with_priority else text


class HumanFormatter(logging.Formatter):
    """Short terminal lines; count extras (`counts`, `outcomes`) follow the message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for key in ("counts", "outcomes"):
            counts = getattr(record, key, None)
            if isinstance(counts, Mapping) and counts:
                text += " (" + ", ".join(f"{name} {n}" for name, n in counts.items()) + ")"
        return text


def syslog_priority(levelno: int) -> int:
    for level in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= level:
            return _PRIORITY[level]
    return _PRIORITY[logging.DEBUG]


def is_journal_stream(stream: Any, environ: Mapping[str, str]) -> bool:
    """True when `stream` is the journal connection systemd announced in $JOURNAL_STREAM
    ("device:inode" of that connection, per systemd.exec(5))."""
    announced = environ.get("JOURNAL_STREAM", "")
    try:
        info = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return announced == f"{info.st_dev}:{info.st_ino}"


def configure_logging(
    level: int = logging.INFO, stream: Any = None, environ: Mapping[str, str] | None = None
) -> None:
    stream = stream or sys.stderr
    environ = os.environ if environ is None else environ
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    if sys.stdout.isatty() and stream.isatty():
        handler.setFormatter(HumanFormatter())
    else:
        handler.setFormatter(JsonFormatter(with_priority=is_journal_stream(stream, environ)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler", "waitress"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

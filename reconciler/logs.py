"""Logging setup for the CLI and the service: JSON lines when stdout is not a terminal (journald),
short human lines on a terminal. Called once by `cli.main`. Records carry structured extras
(employee_id, action, outcome, ...); nothing here ever formats a secret or a request body, and
`RedactingFilter` removes any remembered secret that reached a message anyway.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from reconciler.redact import redact

EXTRAS = ("employee_id", "action", "outcome", "fields", "pass_id", "event_type", "kind")


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
        for name in EXTRAS:
            value = getattr(record, name, None)
            if isinstance(value, str):
                setattr(record, name, redact(value))
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.redacted_error = redact(repr(error))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: getattr(record, k) for k in EXTRAS if hasattr(record, k)})
        if record.exc_info:
            line["error"] = getattr(record, "redacted_error", None) or repr(record.exc_info[1])
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: int = logging.INFO, stream=None) -> None:
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    if sys.stdout.isatty() and stream.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s",
                                               "%H:%M:%S"))
    else:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler", "waitress"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

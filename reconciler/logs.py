"""Logging setup for the CLI and the service: JSON lines when stdout is not a terminal (journald),
short human lines on a terminal. Called once by `cli.main`. Records carry structured extras
(employee_id, action, outcome, ...); nothing here ever formats a secret or a request body.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

EXTRAS = ("employee_id", "action", "outcome", "fields", "pass_id", "event_type", "kind",
          "progress")


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
            line["error"] = repr(record.exc_info[1])
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: int = logging.INFO, stream=None) -> None:
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
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

"""Structured logs: one JSON object per line, with the message id, correlation id and route
when the record has them (`log.info("...", extra=message_fields(...))`).

Secrets never reach a log: the bus logs no configuration values, broker URLs are logged
without their password, and message bodies are not logged.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

from esb import jsonfmt

CONTEXT_FIELDS = ("message_id", "correlation_id", "route", "destination", "attempt", "outcome")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return jsonfmt.dumps(entry)


def message_fields(*, message_id: str | None = None, correlation_id: str | None = None,
                   route: str | None = None, destination: str | None = None, **more: Any) -> dict[str, Any]:
    """`extra=` for a log call about one message."""
    return {"message_id": message_id, "correlation_id": correlation_id, "route": route,
            "destination": destination, **more}


def configure(level: str = "INFO") -> None:
    """JSON lines on stderr for the whole process (called by `esb run`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pika logs every failed connection attempt at ERROR with a traceback; the transport says
    # what happened in one line of its own, so only pika's critical messages are kept
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)

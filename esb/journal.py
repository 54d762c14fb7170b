"""The trace journal: every step of every message, with time, route, destination and outcome.

It survives restarts: SQLite (one file, the default) or PostgreSQL (a DSN, for several nodes).
`record()` is on the hot path, so it only appends to an in-memory queue; one writer thread
batches the queue into a transaction every `flush_interval` seconds. A crash can lose the last
fraction of a second of trace, never a message: the messages themselves live in the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from esb.database import Database, close_quietly, transaction

log = logging.getLogger(__name__)

STEPS = ("received", "rejected", "filtered", "published", "delivered", "retried", "dead_lettered", "replayed",
         "purged", "receipt_sent", "receipt_failed")
"""The steps a message can go through; `detail` says more (error text, target's id, ...).
`receipt_sent` / `receipt_failed`: a receipt a source owed the sender afterwards (an asynchronous AS2
MDN) was taken, or an attempt to send it failed (it is tried again)."""

DEFAULT_RETENTION_DAYS = 30.0
"""Trace entries older than this are deleted (days; the `journal.retention` setting)."""

DEFAULT_FLUSH_INTERVAL = 0.2
"""Seconds between two batched writes of the queued entries."""

JOURNAL_FILE_NAME = "journal.sqlite"
"""The journal's file in the data directory when no PostgreSQL DSN is configured."""

ERROR_STEPS = ("rejected", "retried", "dead_lettered")
"""The steps that count as a route's errors (`last_errors`)."""

LAST_ERROR_WINDOW = 86400.0
"""Seconds back `last_errors` searches by default."""

_PURGE_EVERY = 3600.0  # seconds between two retention sweeps

_COLUMNS = ("message_id", "correlation_id", "route", "destination", "step", "detail", "at", "at_epoch")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS esb_trace (
    message_id TEXT NOT NULL,
    correlation_id TEXT,
    route TEXT NOT NULL,
    destination TEXT,
    step TEXT NOT NULL,
    detail TEXT,
    at TEXT NOT NULL,
    at_epoch DOUBLE PRECISION NOT NULL
)"""
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS esb_trace_message ON esb_trace (message_id)",
    "CREATE INDEX IF NOT EXISTS esb_trace_correlation ON esb_trace (correlation_id)",
    "CREATE INDEX IF NOT EXISTS esb_trace_at ON esb_trace (at_epoch)",
)


@dataclass(frozen=True, slots=True)
class TraceEntry:
    message_id: str
    correlation_id: str | None
    route: str
    destination: str | None
    step: str
    detail: str | None
    at: str  # RFC 3339, UTC

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _COLUMNS[:-1]}


class Journal:
    """A trace journal on SQLite (a file path) or PostgreSQL (a `postgresql://` DSN).

    Keyword arguments:
    - `retention_days` (float, default 30): entries older than this are deleted, at start and hourly;
    - `flush_interval` (seconds, default 0.2): how often queued entries are written.
    """

    def __init__(self, target: str | Path, *, retention_days: float = DEFAULT_RETENTION_DAYS,
                 flush_interval: float = DEFAULT_FLUSH_INTERVAL):
        self._database = Database(target)
        self.target = self._database.target
        self.retention_seconds = retention_days * 86400.0
        self.flush_interval = flush_interval
        self._queue: deque[tuple] = deque()
        self._wake = threading.Event()
        self._flushed = threading.Condition()
        self._written = 0  # entries written so far, for flush()
        self._queued = 0
        self._closing = False
        self._last_error: str | None = None
        with closing(self._connect()) as connection:  # fail early, in the caller's thread, on a bad target
            self._create_schema(connection)
        self._writer = threading.Thread(target=self._write_loop, name="esb-journal", daemon=True)
        self._writer.start()

    # --- writing ----------------------------------------------------------------------------
    def record(self, step: str, *, message_id: str, route: str, destination: str | None = None,
               correlation_id: str | None = None, detail: str | None = None, at: float | None = None) -> None:
        """Queue one trace entry; returns at once. `at` (epoch seconds, default now) is when the
        step happened, for a step recorded after the fact (a publish, once confirmed)."""
        if step not in STEPS:
            raise ValueError(f"unknown trace step {step!r}; known: {', '.join(STEPS)}")
        now = time.time() if at is None else at
        at = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
        self._queue.append((message_id, correlation_id, route, destination, step, detail, at, now))
        self._queued += 1

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        target = self._queued
        self._wake.set()
        with self._flushed:
            return self._flushed.wait_for(lambda: self._written >= target or not self._writer.is_alive(),
                                          timeout)

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        self._writer.join(timeout=10)

    @property
    def healthy(self) -> bool:
        """True when the last write succeeded (for readiness checks)."""
        return self._last_error is None and self._writer.is_alive()

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def _write_loop(self) -> None:
        next_purge = 0.0
        connection = None
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                if connection is None:
                    connection = self._connect()
                self._write_batch(connection)
                if time.time() >= next_purge:
                    self._delete_older_than(connection, time.time() - self.retention_seconds)
                    next_purge = time.time() + _PURGE_EVERY
                self._last_error = None
            except Exception as error:  # the journal must never take the bus down
                self._last_error = f"{type(error).__name__}: {error}"
                log.warning("journal write failed, will retry: %s", self._last_error)
                if connection is not None:
                    close_quietly(connection)
                connection = None
            if self._closing and not self._queue:
                break
        if connection is not None:
            close_quietly(connection)
        with self._flushed:
            self._flushed.notify_all()

    def _write_batch(self, connection: Any) -> None:
        batch = []
        while self._queue:
            batch.append(self._queue.popleft())
        if not batch:
            return
        sql = f"INSERT INTO esb_trace ({', '.join(_COLUMNS)}) VALUES ({self._database.params(len(_COLUMNS))})"
        try:
            with transaction(connection) as cursor:
                cursor.executemany(sql, batch)
        except Exception:
            self._queue.extendleft(reversed(batch))  # keep them for the next try
            raise
        with self._flushed:
            self._written += len(batch)
            self._flushed.notify_all()

    # --- reading ----------------------------------------------------------------------------
    def trace(self, *, message_id: str | None = None, correlation_id: str | None = None,
              limit: int = 1000) -> list[TraceEntry]:
        """Every entry of a message (by id) or of a business document (by correlation id), oldest first."""
        if (message_id is None) == (correlation_id is None):
            raise ValueError("give exactly one of message_id or correlation_id")
        column, value = ("message_id", message_id) if message_id else ("correlation_id", correlation_id)
        sql = (f"SELECT {', '.join(_COLUMNS[:-1])} FROM esb_trace WHERE {column} = {self._placeholder}"
               f" ORDER BY at_epoch LIMIT {int(limit)}")
        with closing(self._connect()) as connection:
            rows = connection.cursor().execute(sql, (value,)).fetchall()
        return [TraceEntry(*row) for row in rows]

    def last_errors(self, window: float = LAST_ERROR_WINDOW) -> dict[str, dict[str, Any]]:
        """{route: its newest rejected, retried or dead-lettered entry of the last `window` seconds},
        each as {destination, step, detail, at}; routes without an error in the window are absent."""
        sql = (f"SELECT route, destination, step, detail, at FROM esb_trace"
               f" WHERE step IN ({self._database.params(len(ERROR_STEPS))})"
               f" AND at_epoch >= {self._placeholder} ORDER BY at_epoch DESC LIMIT 1000")
        with closing(self._connect()) as connection:
            rows = connection.cursor().execute(sql, (*ERROR_STEPS, time.time() - window)).fetchall()
        newest: dict[str, dict[str, Any]] = {}
        for route, destination, step, detail, at in rows:
            newest.setdefault(route, {"destination": destination, "step": step, "detail": detail, "at": at})
        return newest

    def message_ids(self, route: str, step: str, since: float, limit: int = 20) -> list[str]:
        """Ids of the messages that went through `step` on `route` since `since` (epoch), newest first."""
        p = self._placeholder
        sql = (f"SELECT message_id FROM esb_trace WHERE route = {p} AND step = {p} AND at_epoch >= {p}"
               f" ORDER BY at_epoch DESC LIMIT {int(limit)}")
        with closing(self._connect()) as connection:
            rows = connection.cursor().execute(sql, (route, step, since)).fetchall()
        return list(dict.fromkeys(row[0] for row in rows))

    def activity(self, window: float = 3600.0, bucket: float = 60.0) -> dict[str, Any]:
        """Deliveries and errors (rejected, retried, dead-lettered) of the last `window` seconds in
        buckets of `bucket` seconds, oldest first: {"since", "bucket_seconds", "delivered": [n...],
        "errors": [n...]}. Read from the journal, so every process of the bus counts."""
        buckets = int(window // bucket)
        since = (time.time() // bucket + 1) * bucket - buckets * bucket  # whole buckets, the last one now
        steps = ("delivered", *ERROR_STEPS)
        sql = (f"SELECT step, at_epoch FROM esb_trace WHERE step IN ({self._database.params(len(steps))})"
               f" AND at_epoch >= {self._placeholder}")
        with closing(self._connect()) as connection:
            rows = connection.cursor().execute(sql, (*steps, since)).fetchall()
        delivered, errors = [0] * buckets, [0] * buckets
        for step, at_epoch in rows:
            index = min(buckets - 1, int((float(at_epoch) - since) // bucket))
            (delivered if step == "delivered" else errors)[index] += 1
        return {"since": since, "bucket_seconds": bucket, "delivered": delivered, "errors": errors}

    def delete_older_than(self, seconds: float) -> int:
        """Delete entries older than `seconds`; returns how many were deleted."""
        with closing(self._connect()) as connection:
            return self._delete_older_than(connection, time.time() - seconds)

    def _delete_older_than(self, connection: Any, epoch: float) -> int:
        with transaction(connection) as cursor:
            cursor.execute(f"DELETE FROM esb_trace WHERE at_epoch < {self._placeholder}", (epoch,))
            return cursor.rowcount

    # --- backends ---------------------------------------------------------------------------
    @property
    def _placeholder(self) -> str:
        return self._database.placeholder

    def _connect(self) -> Any:
        return self._database.connect()

    def _create_schema(self, connection: Any) -> None:
        with self._database.schema_transaction(connection) as cursor:
            cursor.execute(_SCHEMA)
            for statement in _INDEXES:
                cursor.execute(statement)

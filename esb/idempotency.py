"""De-duplication of sources that may repeat: a business key (or an `Idempotency-Key` header)
maps to the id of the first message made from it, so a repeated post or re-polled document
returns that id instead of publishing twice.

A key is *claimed* (pending) before the publish, *confirmed* after the broker's confirm, and
*released* if the publish fails, so a message that was never stored does not block its own
retry. A pending claim older than `stale_after` (the process died between claim and confirm)
is taken over by the next claim. Keys are kept `retention_days` (default 30).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from esb.database import Database, transaction

DEFAULT_RETENTION_DAYS = 30.0
"""Days a key is remembered; a repeat after that is accepted as new."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS esb_idempotency_keys (
    route TEXT NOT NULL,
    key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    confirmed INTEGER NOT NULL DEFAULT 0,
    at_epoch DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (route, key)
)"""


class IdempotencyStore:
    """Business key -> first message id, per route; SQLite file or PostgreSQL DSN."""

    def __init__(self, target: str | Path, *, retention_days: float = DEFAULT_RETENTION_DAYS):
        self._database = Database(target)
        self.retention_seconds = retention_days * 86400.0
        self._local = threading.local()
        # SQLite: one connection behind a lock. Threads queueing on a Python lock are served in
        # microseconds; threads with their own connections collide on SQLite's write lock and
        # back off in sleeps, which more than halved the inbound rate (measured).
        self._shared = None if self._database.postgres else self._database.connect()
        self._lock = threading.Lock()
        with closing(self._database.connect()) as connection, transaction(connection) as cursor:
            cursor.execute(_SCHEMA)
            cursor.execute(f"DELETE FROM esb_idempotency_keys WHERE at_epoch < {self._database.placeholder}",
                           (time.time() - self.retention_seconds,))

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        if self._shared is not None:
            with self._lock, transaction(self._shared) as cursor:
                yield cursor
            return
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._database.connect()
        with transaction(connection) as cursor:
            yield cursor

    def claim(self, route: str, key: str, message_id: str, *,
              stale_after: float = 60.0) -> tuple[str | None, bool]:
        """Claim `key` for `message_id` (pending until `confirm`).

        Returns `(None, False)` when the claim is ours, else `(holder's id, holder confirmed?)`.
        A pending claim older than `stale_after` seconds is taken over."""
        p = self._database.placeholder
        now = time.time()
        with self._transaction() as cursor:
            cursor.execute(
                f"INSERT INTO esb_idempotency_keys (route, key, message_id, confirmed, at_epoch)"
                f" VALUES ({p}, {p}, {p}, 0, {p}) ON CONFLICT (route, key) DO NOTHING",
                (route, key, message_id, now))
            if cursor.rowcount == 1:
                return None, False
            cursor.execute(
                f"UPDATE esb_idempotency_keys SET message_id = {p}, at_epoch = {p}"
                f" WHERE route = {p} AND key = {p} AND confirmed = 0 AND at_epoch < {p}",
                (message_id, now, route, key, now - stale_after))
            if cursor.rowcount == 1:
                return None, False
            cursor.execute(f"SELECT message_id, confirmed FROM esb_idempotency_keys"
                           f" WHERE route = {p} AND key = {p}", (route, key))
            holder, confirmed = cursor.fetchone()
            return holder, bool(confirmed)

    def confirm(self, route: str, key: str, message_id: str) -> None:
        """The message holding `key` is stored: repeats are duplicates from now on."""
        p = self._database.placeholder
        with self._transaction() as cursor:
            cursor.execute(f"UPDATE esb_idempotency_keys SET confirmed = 1 WHERE route = {p} AND key = {p}"
                           f" AND message_id = {p}", (route, key, message_id))

    def release(self, route: str, key: str, message_id: str) -> None:
        """Forget a claim whose message was not stored (the publish failed)."""
        p = self._database.placeholder
        with self._transaction() as cursor:
            cursor.execute(
                f"DELETE FROM esb_idempotency_keys WHERE route = {p} AND key = {p} AND message_id = {p}",
                (route, key, message_id))

"""De-duplication of sources that may repeat: a business key (or an `Idempotency-Key` header)
maps to the id of the first message made from it, so a repeated post or re-polled document
returns that id instead of publishing twice.

A key is *claimed* before the publish and *released* if the publish fails, so a message that
was never stored does not block its own retry. Keys are kept `retention_days` (default 30).
"""

from __future__ import annotations

import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from esb.database import Database, transaction

DEFAULT_RETENTION_DAYS = 30.0
"""Days a key is remembered; a repeat after that is accepted as new."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS esb_idempotency (
    route TEXT NOT NULL,
    key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    at_epoch DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (route, key)
)"""


class IdempotencyStore:
    """Business key -> first message id, per route; SQLite file or PostgreSQL DSN."""

    def __init__(self, target: str | Path, *, retention_days: float = DEFAULT_RETENTION_DAYS):
        self._database = Database(target)
        self.retention_seconds = retention_days * 86400.0
        self._local = threading.local()
        with closing(self._database.connect()) as connection, transaction(connection) as cursor:
            cursor.execute(_SCHEMA)
            cursor.execute(f"DELETE FROM esb_idempotency WHERE at_epoch < {self._database.placeholder}",
                           (time.time() - self.retention_seconds,))

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._database.connect()
        return connection

    def claim(self, route: str, key: str, message_id: str) -> str | None:
        """Claim `key` for `message_id`: None when the claim is new, else the id that holds it."""
        p = self._database.placeholder
        with transaction(self._connection()) as cursor:
            cursor.execute(
                f"INSERT INTO esb_idempotency (route, key, message_id, at_epoch) VALUES ({p}, {p}, {p}, {p})"
                " ON CONFLICT (route, key) DO NOTHING", (route, key, message_id, time.time()))
            if cursor.rowcount == 1:
                return None
            cursor.execute(f"SELECT message_id FROM esb_idempotency WHERE route = {p} AND key = {p}",
                           (route, key))
            return cursor.fetchone()[0]

    def release(self, route: str, key: str, message_id: str) -> None:
        """Forget a claim whose message was not stored (the publish failed)."""
        p = self._database.placeholder
        with transaction(self._connection()) as cursor:
            cursor.execute(
                f"DELETE FROM esb_idempotency WHERE route = {p} AND key = {p} AND message_id = {p}",
                (route, key, message_id))

"""The embedded transport's file: one SQLite database holding its queues and messages.

One file in WAL mode (`synchronous=FULL`): a `queues` table (the declared work and dead-letter
queues, named as on RabbitMQ by `esb.transport.names`) and a `messages` table (queue, message id,
properties and headers as JSON, body, `available_at`, `lease_owner`, `deliveries`). A claimed
message is leased to one transport (`owner`) until it is settled or its lease expires; every
settlement is one statement that only changes a message this owner still leases.

One connection per transport, one statement at a time (`lock`). Once `release_leases()` ran
(the transport stops) nothing more is claimed, renewed or settled: late outcomes are dropped and
the messages are back in their queues.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from esb.transport.errors import PublishError, TransportError, Unroutable
from esb.transport.headers import replay_headers

BUSY_TIMEOUT_MS = 10_000
"""Milliseconds a statement waits for another process's write lock before failing."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    route TEXT NOT NULL,
    destination TEXT
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT,
    properties TEXT NOT NULL,
    body BLOB NOT NULL,
    available_at REAL NOT NULL,
    lease_owner TEXT,
    deliveries INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, available_at);
"""

_MOVE = ("UPDATE messages SET queue = ?, properties = ?, available_at = ?, lease_owner = NULL, "
         "deliveries = 0 WHERE seq = ?")


class Store:
    """The SQLite file of one embedded transport; `owner` names the leases it holds."""

    def __init__(self, path: Path, owner: str, lease: float):
        self.path = path
        self.owner = owner
        self.lease = lease
        self.lock = threading.RLock()
        self._connection: sqlite3.Connection | None = None
        self._released = False

    def _db(self) -> sqlite3.Connection:
        """The connection (opened, and the schema made, on first use); call under `lock`."""
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                         timeout=BUSY_TIMEOUT_MS / 1000)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            connection.executescript(SCHEMA)
            self._connection = connection
        return self._connection

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def execute(self, sql: str, parameters: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self.lock:
            return self._db().execute(sql, tuple(parameters))

    def close(self) -> None:
        with self.lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # --- queues and publishing --------------------------------------------------------------
    def declare(self, queues: Iterable[tuple[str, str, str, str | None]]) -> None:
        """Record (name, kind, route, destination) queues (idempotent)."""
        try:
            with self.transaction() as db:
                db.executemany("INSERT OR IGNORE INTO queues (name, kind, route, destination) "
                               "VALUES (?, ?, ?, ?)", list(queues))
        except sqlite3.Error as error:
            raise TransportError(f"cannot use the embedded transport file {self.path}: {error}") from None

    def insert(self, queues: list[str], properties: dict[str, Any], body: bytes) -> list[str]:
        """One row per declared queue of `queues`, in one transaction; returns the queues that took it.

        `Unroutable` when none is declared, `PublishError` when the file refused the write."""
        text = json.dumps(properties)
        try:
            with self.transaction() as db:
                marks = ", ".join("?" * len(queues))
                declared = {row[0] for row in db.execute(f"SELECT name FROM queues WHERE name IN ({marks})",
                                                         queues)}
                targets = [name for name in queues if name in declared]
                if not targets:
                    raise Unroutable(f"no queue took the message sent to {', '.join(queues)} "
                                     "(not declared in the embedded transport file)")
                now = time.time()
                db.executemany("INSERT INTO messages (queue, message_id, properties, body, available_at) "
                               "VALUES (?, ?, ?, ?, ?)",
                               [(name, properties.get("message_id"), text, body, now) for name in targets])
        except sqlite3.Error as error:
            raise PublishError(f"could not store the message in {self.path}: {error}") from None
        return targets

    # --- leases -----------------------------------------------------------------------------
    def claim(self, queue_name: str, limit: int) -> list[tuple[int, str, bytes, int]]:
        """Lease up to `limit` available messages of a queue, atomically: (seq, properties, body,
        deliveries) in queue order."""
        now = time.time()
        with self.lock:
            if self._released:
                return []
            db = self._db()
            # a read first: an idle poll must not take the file's write lock
            if db.execute("SELECT 1 FROM messages WHERE queue = ? AND available_at <= ? LIMIT 1",
                          (queue_name, now)).fetchone() is None:
                return []
            rows = db.execute(
                "UPDATE messages SET lease_owner = ?, available_at = ?, deliveries = deliveries + 1 "
                "WHERE seq IN (SELECT seq FROM messages WHERE queue = ? AND available_at <= ? "
                "ORDER BY seq LIMIT ?) RETURNING seq, properties, body, deliveries",
                (self.owner, now + self.lease, queue_name, now, limit)).fetchall()
        return sorted(rows)

    def renew_leases(self) -> None:
        with self.lock:
            if not self._released:
                self._db().execute("UPDATE messages SET available_at = ? WHERE lease_owner = ?",
                                   (time.time() + self.lease, self.owner))

    def release_leases(self) -> None:
        """What was taken but not settled goes back to its queue (marked as redelivered); from
        here on nothing is claimed, renewed or settled."""
        with self.lock:
            self._released = True
            if self._connection is not None:
                self._connection.execute("UPDATE messages SET lease_owner = NULL, available_at = ? "
                                         "WHERE lease_owner = ?", (time.time(), self.owner))

    # --- settlements: the number of rows changed (0: the lease is not ours), None once released --
    def _settle(self, sql: str, parameters: tuple) -> int | None:
        with self.lock:
            if self._released:
                return None
            return self._db().execute(sql, parameters).rowcount

    def delete(self, seq: int) -> int | None:
        return self._settle("DELETE FROM messages WHERE seq = ? AND lease_owner = ?", (seq, self.owner))

    def delay(self, seq: int, properties: dict[str, Any], available_at: float) -> int | None:
        """Back in its queue with new properties, invisible until `available_at` (a retry)."""
        return self._settle("UPDATE messages SET properties = ?, available_at = ?, lease_owner = NULL, "
                            "deliveries = 0 WHERE seq = ? AND lease_owner = ?",
                            (json.dumps(properties), available_at, seq, self.owner))

    def move(self, seq: int, queue_name: str, properties: dict[str, Any]) -> int | None:
        """To another queue with new properties (a dead letter)."""
        return self._settle(_MOVE + " AND lease_owner = ?",
                            (queue_name, json.dumps(properties), time.time(), seq, self.owner))

    def unlease(self, seq: int) -> int | None:
        """Back in its queue unchanged, available now."""
        return self._settle("UPDATE messages SET lease_owner = NULL, available_at = ? "
                            "WHERE seq = ? AND lease_owner = ?", (time.time(), seq, self.owner))

    # --- statistics and dead letters --------------------------------------------------------
    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """({queue: messages available now}, {queue: messages waiting for a later time})."""
        rows = self.execute("SELECT queue, available_at > ?, COUNT(*) FROM messages GROUP BY 1, 2",
                            (time.time(),)).fetchall()
        ready: dict[str, int] = {}
        waiting: dict[str, int] = {}
        for queue_name, delayed, count in rows:
            (waiting if delayed else ready)[queue_name] = count
        return ready, waiting

    def browse(self, queue_name: str, limit: int | None) -> list[tuple[dict[str, Any], bytes]]:
        rows = self.execute("SELECT properties, body FROM messages WHERE queue = ? ORDER BY seq LIMIT ?",
                            (queue_name, -1 if limit is None else limit)).fetchall()
        return [(json.loads(properties), bytes(body)) for properties, body in rows]

    def replay(self, moves: list[tuple[str, str]], wanted: set[str] | None) -> int:
        """Move the messages (those with `wanted` ids, or all) of each (dead-letter queue, work
        queue) to the work queue with `replay_headers`, in one transaction; returns how many."""
        replayed = 0
        with self.transaction() as db:
            for queue_name, work_queue in moves:
                rows = db.execute("SELECT seq, message_id, properties FROM messages WHERE queue = ? "
                                  "ORDER BY seq", (queue_name,)).fetchall()
                rows = [row for row in rows if wanted is None or row[1] in wanted]
                declared = db.execute("SELECT 1 FROM queues WHERE name = ?", (work_queue,)).fetchone()
                if rows and declared is None:
                    raise Unroutable(f'work queue "{work_queue}" does not exist; run `esb topology declare`')
                now = time.time()
                for seq, _message_id, properties_text in rows:
                    properties = json.loads(properties_text)
                    properties["headers"] = replay_headers(properties.get("headers"))
                    db.execute(_MOVE, (work_queue, json.dumps(properties), now, seq))
                replayed += len(rows)
        return replayed

    def purge(self, queues: list[str], wanted: list[str] | None) -> int:
        """Delete the messages (those with `wanted` ids, or all) of `queues`; returns how many."""
        purged = 0
        with self.transaction() as db:
            for queue_name in queues:
                if wanted is None:
                    purged += db.execute("DELETE FROM messages WHERE queue = ?", (queue_name,)).rowcount
                else:
                    for message_id in wanted:
                        purged += db.execute("DELETE FROM messages WHERE queue = ? AND message_id = ?",
                                             (queue_name, message_id)).rowcount
        return purged

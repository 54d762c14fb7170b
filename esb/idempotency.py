"""De-duplication of sources that may repeat. Each message claims its keys: the request's key
(a client's `Idempotency-Key` header, a file's identity) and its business key (source, document
number, revision). A message is a repeat when *any* of its keys was seen; every key then points
to the id of the first message, so a new header cannot bypass the business key.

A claim stores the message id *before* the publish (pending), is *confirmed* after the broker's
confirm, and is *disowned* (never forgotten) when the publish fails: whoever claims the key next
re-publishes under the same id, so a crash between publish and confirm never gives a document a
second message id. A pending claim is waited for only while it belongs to this process (another
request thread is storing it) and is younger than `stale_after`; a claim of another process
(one that died, typically, after kill -9) is adopted at once, so a restarted bus answers
re-posts within its first seconds. If that other process is in fact alive, both publish the same
id: a same-id repeat that a target honouring `Idempotency-Key` absorbs.

The request key remembers a digest of the body it came with: the same key with another body is
a `Conflict` (409), naming the key. Keys are scoped to the transport (`scope`): what refers to
messages of one broker means nothing on another. Keys are kept `retention_days` (default 30).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from esb.database import Database, transaction
from esb.errors import Conflict, Unavailable

DEFAULT_RETENTION_DAYS = 30.0
"""Days a key is remembered; a repeat after that is accepted as new."""

TABLE = "esb_idempotency_claims"
_LEGACY_TABLE = "esb_idempotency_keys"  # before keys were scoped to a transport
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    scope TEXT NOT NULL,
    route TEXT NOT NULL,
    key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    fingerprint TEXT,
    owner TEXT,
    confirmed INTEGER NOT NULL DEFAULT 0,
    at_epoch DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (scope, route, key)
)"""


def body_fingerprint(body: bytes) -> str:
    """The digest a request key remembers of its body."""
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a message; `fingerprint` (a request key's body digest) or None (a business key)."""

    text: str
    fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of claiming a message's keys.

    `outcome` is `new` (publish under `message_id`, the id offered), `duplicate` (confirmed
    earlier as `message_id`: publish nothing), `adopted` (claimed earlier as `message_id` and not
    confirmed: publish again under that id) or `busy` (this process is storing it right now)."""

    outcome: str
    message_id: str
    key: str | None = None  # the key that made it a duplicate, adopted or busy

    @property
    def publish(self) -> bool:
        return self.outcome in ("new", "adopted")


def _is_database_error(error: BaseException) -> bool:
    """sqlite3's errors, or psycopg's (whose base class is also named `Error`)."""
    return isinstance(error, sqlite3.Error) or any(
        kind.__module__.startswith("psycopg") for kind in type(error).__mro__)


def _unavailable(error: BaseException) -> Unavailable:
    failure = Unavailable(f"the idempotency store cannot be written: {type(error).__name__}: {error}")
    failure.__cause__ = error
    return failure


class _Operation:
    """One caller's statements, waiting for a batch (see `IdempotencyStore._run`)."""

    __slots__ = ("run", "savepoint", "alone", "result", "error", "done")

    def __init__(self, run: Callable[[Any], Any], savepoint: bool, alone: Callable[[Any], Any] | None):
        self.run = run
        self.savepoint = savepoint  # whether a failure may leave statements of its own to undo
        self.alone = alone  # one statement that settles it when it runs alone (autocommit), or UNDECIDED
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False


UNDECIDED = object()
"""What an operation's single statement returns when the operation needs its whole transaction."""


class _Busy(Exception):
    def __init__(self, claim: Claim):
        self.claim = claim


class IdempotencyStore:
    """Keys -> first message id, per (transport scope, route); SQLite file or PostgreSQL DSN."""

    def __init__(self, target: str | Path, *, scope: str = "",
                 retention_days: float = DEFAULT_RETENTION_DAYS):
        self._database = Database(target)
        self.scope = scope
        self.retention_seconds = retention_days * 86400.0
        self._local = threading.local()
        # SQLite: one connection behind a lock. Threads queueing on a Python lock are served in
        # microseconds; threads with their own connections collide on SQLite's write lock and
        # back off in sleeps, which more than halved the inbound rate (measured).
        self._shared = None if self._database.postgres else self._database.connect()
        self._lock = threading.Lock()
        self._pending: list[_Operation] = []  # SQLite: operations waiting for the next batch
        self._pending_lock = threading.Lock()
        p = self._database.placeholder
        with closing(self._database.connect()) as connection:
            with self._database.schema_transaction(connection) as cursor:
                cursor.execute(_SCHEMA)
                cursor.execute(f"DELETE FROM {TABLE} WHERE at_epoch < {p}",
                               (time.time() - self.retention_seconds,))
            self._adopt_legacy_table(connection)

    def _adopt_legacy_table(self, connection: Any) -> None:
        """Keys stored before scopes existed belong to the transport the bus runs on now."""
        if self._database.postgres:
            exists = connection.execute(f"SELECT to_regclass('{_LEGACY_TABLE}')").fetchone()[0] is not None
        else:
            exists = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                        (_LEGACY_TABLE,)).fetchone() is not None
        if not exists:
            return
        p = self._database.placeholder
        with transaction(connection) as cursor:
            cursor.execute(f"INSERT INTO {TABLE} (scope, route, key, message_id, confirmed, at_epoch)"
                           f" SELECT {p}, route, key, message_id, confirmed, at_epoch"
                           f" FROM {_LEGACY_TABLE} WHERE 1 = 1"
                           f" ON CONFLICT DO NOTHING", (self.scope,))  # WHERE: SQLite needs it before ON
            cursor.execute(f"DROP TABLE {_LEGACY_TABLE}")

    def _run(self, operation: Callable[[Any], Any], *, savepoint: bool = True,
             alone: Callable[[Any], Any] | None = None) -> Any:
        """`operation(cursor)` in a transaction; its result, or what it raised.

        SQLite (one connection) batches: each caller queues its operation, and whichever caller
        holds the connection next runs every queued one in a single transaction, an operation that
        may fail after writing (a claim of several keys) inside its own savepoint, so it undoes only
        its own statements. Under load one commit serves many requests instead of each request
        queueing for its own (group commit: the per-request transactions were the inbound path's
        bottleneck, measured with py-spy). An operation that runs alone and has a single statement
        that settles it (`alone`: the INSERT of a new key, a confirm's UPDATE) runs just that, in
        autocommit: one statement instead of BEGIN, the statement and COMMIT.
        PostgreSQL: a transaction of the caller's own, on its thread's connection."""
        if self._shared is None:
            with self._transaction() as cursor:
                return operation(cursor)
        mine = _Operation(operation, savepoint, alone)
        with self._pending_lock:
            self._pending.append(mine)
        with self._lock:
            if not mine.done:
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                self._run_batch(batch)
        if mine.error is not None:
            raise mine.error
        return mine.result

    def _run_batch(self, batch: list[_Operation]) -> None:
        """On the shared SQLite connection, with `_lock` held: every operation, one commit."""
        if len(batch) == 1 and batch[0].alone is not None and self._run_alone(batch[0]):
            return
        try:
            with transaction(self._shared) as cursor:
                for operation in batch:
                    if operation.savepoint:
                        cursor.execute("SAVEPOINT claim")
                    try:
                        operation.result = operation.run(cursor)
                    except Exception as error:
                        if operation.savepoint:
                            cursor.execute("ROLLBACK TO claim")
                        elif _is_database_error(error):
                            raise  # a statement may have half-run: the batch fails as a whole
                        operation.error = _unavailable(error) if _is_database_error(error) else error
                    if operation.savepoint:
                        cursor.execute("RELEASE claim")
        except Exception as error:  # the commit (or the batch's bookkeeping) failed: nothing is stored
            failure = _unavailable(error)
            for operation in batch:
                operation.result, operation.error = None, failure
        for operation in batch:
            operation.done = True

    def _run_alone(self, operation: _Operation) -> bool:
        """Its one statement, in autocommit; False when the operation needs its transaction."""
        try:
            result = operation.alone(self._shared.cursor())
        except Exception as error:
            result, operation.error = None, _unavailable(error) if _is_database_error(error) else error
        if result is UNDECIDED:
            return False
        operation.result, operation.done = result, True
        return True

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A PostgreSQL transaction on this thread's connection; a database that cannot be written
        (disk full, read-only, gone) raises `Unavailable`, so the caller answers 503 and the
        client retries, never a 202 or a 500."""
        try:
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = self._local.connection = self._database.connect()
            with transaction(connection) as cursor:
                yield cursor
        except (Conflict, _Busy):
            raise
        except Exception as error:
            self._local.connection = None  # a broken connection: open a new one next time
            if _is_database_error(error):
                raise _unavailable(error) from error
            raise

    def claim(self, route: str, keys: Sequence[Key], message_id: str, *, owner: str,
              stale_after: float = 60.0) -> Claim:
        """Claim every key of one message for `message_id` on behalf of `owner` (a process's id).

        Raises `Conflict` when a request key was claimed with another body's fingerprint; see
        `Claim` for the outcomes. A pending claim of `owner` older than `stale_after` seconds is
        taken over (adopted) like another owner's."""
        try:
            # one key: its INSERT either stored it or did nothing, so a Conflict or _Busy has nothing to undo
            return self._run(lambda cursor: self._claim(cursor, route, keys, message_id, owner, stale_after),
                             savepoint=len(keys) > 1,
                             alone=partial(self._insert_new, route, keys[0], message_id, owner)
                             if len(keys) == 1 else None)
        except _Busy as busy:  # the transaction was rolled back: nothing of ours stays claimed
            return busy.claim

    def _insert_new(self, route: str, key: Key, message_id: str, owner: str, cursor: Any) -> Any:
        """The claim of one key that nobody holds: its INSERT alone; UNDECIDED when it is held."""
        if self._insert(cursor, route, key, message_id, owner, time.time()):
            return Claim("new", message_id)
        return UNDECIDED

    def _insert(self, cursor: Any, route: str, key: Key, message_id: str, owner: str, now: float) -> bool:
        """Store `key` as claimed (pending) unless it is held already; whether it was stored."""
        p = self._database.placeholder
        cursor.execute(f"INSERT INTO {TABLE} (scope, route, key, message_id, fingerprint, owner, confirmed,"
                       f" at_epoch) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, 0, {p}) ON CONFLICT DO NOTHING",
                       (self.scope, route, key.text, message_id, key.fingerprint, owner, now))
        return cursor.rowcount == 1

    def _claim(self, cursor: Any, route: str, keys: Sequence[Key], message_id: str, owner: str,
               stale_after: float) -> Claim:
        p = self._database.placeholder
        now = time.time()
        holders: list[tuple[Key, tuple]] = []
        for key in keys:
            if not self._insert(cursor, route, key, message_id, owner, now):
                cursor.execute(f"SELECT message_id, fingerprint, owner, confirmed, at_epoch FROM {TABLE}"
                               f" WHERE scope = {p} AND route = {p} AND key = {p}",
                               (self.scope, route, key.text))
                holders.append((key, cursor.fetchone()))
        if not holders:
            return Claim("new", message_id)
        for key, (_, fingerprint, *_rest) in holders:
            if key.fingerprint and fingerprint and key.fingerprint != fingerprint:
                raise Conflict(f'the idempotency key "{key.text}" was used before with another body; '
                               f"send a new key for a new document, or the same body to repeat it")
        confirmed = [(key, row) for key, row in holders if row[3]]
        key, row = confirmed[0] if confirmed else holders[0]
        if confirmed:
            outcome = "duplicate"
        elif row[2] == owner and row[4] >= now - stale_after:
            raise _Busy(Claim("busy", row[0], key.text))
        else:
            outcome = "adopted"
        marks = ", ".join([p] * len(keys))
        cursor.execute(f"UPDATE {TABLE} SET message_id = {p}, owner = {p}, confirmed = {p}, at_epoch = {p}"
                       f" WHERE scope = {p} AND route = {p} AND key IN ({marks})",
                       (row[0], owner, 1 if confirmed else 0, now, self.scope, route,
                        *[k.text for k in keys]))
        return Claim(outcome, row[0], key.text)

    def confirm(self, route: str, keys: Sequence[Key], message_id: str) -> None:
        """The message holding `keys` is stored: repeats are duplicates from now on."""
        self._update(route, keys, message_id, "confirmed = 1")

    def disown(self, route: str, keys: Sequence[Key], message_id: str) -> None:
        """The publish of `message_id` failed (it may or may not be stored): keep the id, so the next
        claim of these keys adopts it and publishes again under the same id, at once."""
        self._update(route, keys, message_id, "owner = NULL")

    def _update(self, route: str, keys: Sequence[Key], message_id: str, change: str) -> None:
        if not keys:
            return
        p = self._database.placeholder
        marks = ", ".join([p] * len(keys))

        def update(cursor: Any) -> None:
            cursor.execute(f"UPDATE {TABLE} SET {change} WHERE scope = {p} AND route = {p}"
                           f" AND key IN ({marks}) AND message_id = {p}",
                           (self.scope, route, *[k.text for k in keys], message_id))

        self._run(update, savepoint=False, alone=update)

"""Where asynchronous AS2 receipts wait: on SQLite (`<data_dir>/state.sqlite`) or the journal's
PostgreSQL, the place the runtime gives parts with state of their own (`bind_state`), so a
restart loses none and several nodes share them.

- `esb_as2_pending`: a message we sent that waits for the partner's asynchronous receipt: its
  Message-ID, the MIC the receipt must carry, and, once one arrived, whether it made the delivery
  good (`ok`) and why (`detail`).
- `esb_as2_outbox`: a receipt we owe a partner asynchronously, stored before the partner's
  request is answered and deleted only once the partner's URL took it (2xx).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esb.database import Database, transaction

KEEP_SECONDS = 30 * 86400.0
"""Seconds a sent message's receipt record is kept (a late or repeated receipt still finds it)."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS esb_as2_pending (
        message_id TEXT PRIMARY KEY,
        partner TEXT NOT NULL,
        mic TEXT NOT NULL,
        sent_at DOUBLE PRECISION NOT NULL,
        ok INTEGER,
        detail TEXT,
        received_at DOUBLE PRECISION)""",
    """CREATE TABLE IF NOT EXISTS esb_as2_outbox (
        id TEXT PRIMARY KEY,
        route TEXT NOT NULL,
        url TEXT NOT NULL,
        headers TEXT NOT NULL,
        body TEXT NOT NULL,
        message_ids TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_at DOUBLE PRECISION NOT NULL,
        last_error TEXT)""",
)


@dataclass(frozen=True, slots=True)
class Pending:
    """A sent message's wait: `ok` is None while no receipt came, else True (good) or False."""

    message_id: str
    mic: str
    ok: bool | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class OwedReceipt:
    """A receipt to POST to a partner: where, with which headers and body, for which bus messages."""

    id: str
    url: str
    headers: dict[str, str]
    body: bytes
    message_ids: list[str]
    attempts: int


class ReceiptStore:
    """The two tables above on one database target (a SQLite path or a PostgreSQL DSN)."""

    def __init__(self, target: str | Path):
        self._database = Database(target)
        with closing(self._database.connect()) as connection, \
                self._database.schema_transaction(connection) as cursor:
            for statement in _SCHEMA:
                cursor.execute(statement)

    def _run(self, sql: str, parameters: tuple = ()) -> Any:
        with closing(self._database.connect()) as connection, transaction(connection) as cursor:
            cursor.execute(sql.replace("?", self._database.placeholder), parameters)
            return cursor.fetchall() if sql.lstrip().upper().startswith("SELECT") else cursor.rowcount

    # --- what we sent -----------------------------------------------------------------------
    def expect(self, message_id: str, partner: str, mic: str) -> Pending:
        """Note that `message_id` waits for a receipt with `mic`; a good receipt already kept for the
        same MIC stays (a redelivered message is then done without sending it again), anything else
        is waited for afresh."""
        current = self.pending(message_id)
        if current is None:
            self.purge()
            self._run("INSERT INTO esb_as2_pending (message_id, partner, mic, sent_at) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT (message_id) DO NOTHING", (message_id, partner, mic, time.time()))
        elif not (current.ok and current.mic == mic):
            self._run("UPDATE esb_as2_pending SET mic = ?, sent_at = ?, ok = NULL, detail = NULL, "
                      "received_at = NULL WHERE message_id = ?", (mic, time.time(), message_id))
        return self.pending(message_id)

    def pending(self, message_id: str) -> Pending | None:
        rows = self._run("SELECT message_id, mic, ok, detail FROM esb_as2_pending WHERE message_id = ?",
                         (message_id,))
        if not rows:
            return None
        message_id, mic, ok, detail = rows[0]
        return Pending(message_id, mic, None if ok is None else bool(ok), detail)

    def received(self, message_id: str, *, ok: bool, detail: str) -> bool:
        """Record the receipt that came for `message_id`; False when no message waits for one."""
        return self._run("UPDATE esb_as2_pending SET ok = ?, detail = ?, received_at = ? "
                         "WHERE message_id = ?", (int(ok), detail, time.time(), message_id)) == 1

    def purge(self, older_than: float = KEEP_SECONDS) -> None:
        """Forget the messages sent more than `older_than` seconds ago, answered or not."""
        self._run("DELETE FROM esb_as2_pending WHERE sent_at < ?", (time.time() - older_than,))

    # --- what we owe ------------------------------------------------------------------------
    def owe(self, route: str, url: str, headers: dict[str, str], body: bytes, message_ids: list[str]) -> str:
        """Keep a receipt to send to `url`; due at once. Its id."""
        owed_id = uuid.uuid4().hex
        self._run("INSERT INTO esb_as2_outbox (id, route, url, headers, body, message_ids, attempts, "
                  "next_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
                  (owed_id, route, url, json.dumps(headers), base64.b64encode(body).decode(),
                   json.dumps(message_ids), time.time()))
        return owed_id

    def claim_due(self, route: str, lease: float, now: float | None = None) -> list[OwedReceipt]:
        """The receipts of `route` due now, each claimed for `lease` seconds (one conditional UPDATE,
        so two nodes never send the same one at once)."""
        now = time.time() if now is None else now
        rows = self._run("SELECT id, url, headers, body, message_ids, attempts, next_at FROM esb_as2_outbox "
                         "WHERE route = ? AND next_at <= ? ORDER BY next_at", (route, now))
        claimed = []
        for owed_id, url, headers, body, message_ids, attempts, next_at in rows:
            if self._run("UPDATE esb_as2_outbox SET next_at = ? WHERE id = ? AND next_at = ?",
                         (now + lease, owed_id, next_at)) == 1:
                claimed.append(OwedReceipt(owed_id, url, json.loads(headers), base64.b64decode(body),
                                           json.loads(message_ids), attempts))
        return claimed

    def sent(self, owed_id: str) -> None:
        self._run("DELETE FROM esb_as2_outbox WHERE id = ?", (owed_id,))

    def failed(self, owed_id: str, *, attempts: int, next_at: float, error: str) -> None:
        self._run("UPDATE esb_as2_outbox SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?",
                  (attempts, next_at, error, owed_id))

    def owed(self, route: str) -> int:
        """How many receipts of `route` are not sent yet."""
        return self._run("SELECT COUNT(*) FROM esb_as2_outbox WHERE route = ?", (route,))[0][0]

"""The document ledger: one row per business document the bus delivered (its route, type, warehouse,
document and order number, business time, when the bus received it and when it was first posted to
a target), kept in the aggregator's state database (SQLite in the data dir, or the journal's
PostgreSQL, so every node reads the same figures).

It feeds what the trace journal cannot tell, because the journal knows no warehouse and no order
number: documents per flow per day, the order-to-shipment and receipt-to-posting lead times
(`esb.reports`), and the rule "an order not shipped N hours after release" (`esb.watch`).

The runtime calls `delivered()` after each successful delivery; like the journal, it only queues
the row, and one writer thread writes the queue in batches every `flush_interval` seconds, so the
consumer's path stays free of database round trips. A crash can lose the last fraction of a second
of rows (never a message: the broker holds those). `posted_at` is the first delivery to a target
that is not the bus's own (aggregate, alert); `last_delivered_at` the newest delivery of any kind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from contextlib import closing
from pathlib import Path
from typing import Any

from esb.database import Database, transaction
from esb.envelope import parse_rfc3339

log = logging.getLogger(__name__)

DEFAULT_FLUSH_INTERVAL = 0.5
"""Seconds between two batched writes of the queued rows."""

DEFAULT_RETENTION_DAYS = 90.0
"""Rows received longer ago than this are deleted (days), swept hourly."""

INTERNAL_ADAPTERS = frozenset({"aggregate", "alert"})
"""Destinations that are the bus's own stages: a delivery there is not a posting to a target."""

COLUMNS = ("message_id", "route", "type", "warehouse", "document_number", "order_number", "occurred_at",
           "received_at", "posted_at", "last_delivered_at")
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS esb_document (
        message_id TEXT PRIMARY KEY,
        route TEXT NOT NULL,
        type TEXT NOT NULL,
        warehouse TEXT,
        document_number TEXT,
        order_number TEXT,
        occurred_at DOUBLE PRECISION,
        received_at DOUBLE PRECISION NOT NULL,
        posted_at DOUBLE PRECISION,
        last_delivered_at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS esb_document_received ON esb_document (received_at)",
    "CREATE INDEX IF NOT EXISTS esb_document_order ON esb_document (order_number)",
    "CREATE INDEX IF NOT EXISTS esb_document_route ON esb_document (route, last_delivered_at)",
)
_PURGE_EVERY = 3600.0


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_rfc3339(text).timestamp()
    except ValueError:
        return None


def document_row(envelope: Any, route: str, *, posted: bool, now: float) -> tuple:
    """The ledger row of one delivered envelope (see COLUMNS)."""
    payload = envelope.payload if isinstance(envelope.payload, dict) else {}
    order = payload.get("order_number") or payload.get("purchase_order_number")
    received = _epoch(envelope.received_at) or now
    return (envelope.id, route, envelope.type, payload.get("warehouse"), envelope.correlation_id,
            str(order) if order is not None else None, _epoch(envelope.occurred_at), received,
            now if posted else None, now)


class DocumentLedger:
    """See the module docstring. `flush()` waits until what was queued is written (tests, reports)."""

    def __init__(self, target: str | Path, *, flush_interval: float = DEFAULT_FLUSH_INTERVAL,
                 retention_days: float = DEFAULT_RETENTION_DAYS, writer: bool = True):
        self._database = Database(target)
        self.flush_interval = flush_interval
        self.retention_seconds = retention_days * 86400.0
        self._queue: deque[tuple] = deque()
        self._wake = threading.Event()
        self._flushed = threading.Condition()
        self._queued = self._written = 0
        self._closing = False
        with closing(self._database.connect()) as connection, \
                self._database.schema_transaction(connection) as cursor:
            for statement in _SCHEMA:
                cursor.execute(statement)
        self._writer = None
        if writer:
            self._writer = threading.Thread(target=self._write_loop, name="esb-ledger", daemon=True)
            self._writer.start()

    # --- writing ----------------------------------------------------------------------------
    def delivered(self, envelope: Any, route: str, adapter: str, now: float | None = None) -> None:
        """Note one successful delivery of `envelope` (by a destination of `adapter`); returns at once."""
        now = time.time() if now is None else now
        self._queue.append(document_row(envelope, route, posted=adapter not in INTERNAL_ADAPTERS, now=now))
        self._queued += 1
        if self._writer is None:
            self._write()

    def flush(self, timeout: float = 10.0) -> bool:
        target = self._queued
        self._wake.set()
        with self._flushed:
            return self._flushed.wait_for(lambda: self._written >= target or self._writer is None
                                          or not self._writer.is_alive(), timeout)

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            self._writer.join(timeout=10)

    def _write_loop(self) -> None:
        next_purge = 0.0
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self._write()
                if time.time() >= next_purge:
                    self.delete_received_before(time.time() - self.retention_seconds)
                    next_purge = time.time() + _PURGE_EVERY
            except Exception as error:  # the ledger must never take the bus down
                log.warning("document ledger write failed, will retry: %s: %s", type(error).__name__, error)
            if self._closing and not self._queue:
                break
        with self._flushed:
            self._flushed.notify_all()

    def _write(self) -> None:
        batch = []
        while self._queue:
            batch.append(self._queue.popleft())
        if not batch:
            return
        sql = (f"INSERT INTO esb_document ({', '.join(COLUMNS)}) "
               f"VALUES ({self._database.params(len(COLUMNS))}) "
               "ON CONFLICT (message_id) DO UPDATE SET "
               "posted_at = COALESCE(esb_document.posted_at, excluded.posted_at), "
               "last_delivered_at = CASE WHEN excluded.last_delivered_at > esb_document.last_delivered_at "
               "THEN excluded.last_delivered_at ELSE esb_document.last_delivered_at END")
        try:
            with closing(self._database.connect()) as connection, transaction(connection) as cursor:
                cursor.executemany(sql, batch)
        except Exception:
            self._queue.extendleft(reversed(batch))
            raise
        with self._flushed:
            self._written += len(batch)
            self._flushed.notify_all()

    def delete_received_before(self, epoch: float) -> int:
        with closing(self._database.connect()) as connection, transaction(connection) as cursor:
            cursor.execute(f"DELETE FROM esb_document WHERE received_at < {self._database.placeholder}",
                           (epoch,))
            return cursor.rowcount

    # --- reading ----------------------------------------------------------------------------
    def documents(self, *, type: str | None = None, since: float | None = None,
                  warehouse: str | None = None, limit: int = 100_000) -> list[dict[str, Any]]:
        """Rows (as dicts) received since `since`, of one type and warehouse when given, oldest first."""
        clause, parameters = self._database.where({"type": type, "warehouse": warehouse},
                                                  ("received_at", since))
        rows = self._database.select(f"SELECT {', '.join(COLUMNS)} FROM esb_document {clause} "
                                     f"ORDER BY received_at LIMIT {int(limit)}", parameters)
        return [dict(zip(COLUMNS, row, strict=True)) for row in rows]

    def last_delivery(self) -> dict[str, float]:
        """{route: epoch of its newest delivery} of every route the ledger knows."""
        rows = self._database.select("SELECT route, MAX(last_delivered_at) FROM esb_document GROUP BY route")
        return {route: float(at) for route, at in rows}

    def unshipped_orders(self, released_before: float, limit: int = 1000) -> list[dict[str, Any]]:
        """Sales orders (`shipment_order`) received before `released_before` for which no
        `shipment_confirmation` of the same order number and warehouse came, oldest first."""
        p = self._database.placeholder
        rows = self._database.select(
            f"SELECT {', '.join('o.' + c for c in COLUMNS)} FROM esb_document o "
            f"WHERE o.type = 'shipment_order' AND o.received_at < {p} AND o.order_number IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM esb_document s WHERE s.type = 'shipment_confirmation' "
            "AND s.order_number = o.order_number "
            "AND (s.warehouse = o.warehouse OR s.warehouse IS NULL OR o.warehouse IS NULL)) "
            f"ORDER BY o.received_at LIMIT {int(limit)}", (released_before,))
        return [dict(zip(COLUMNS, row, strict=True)) for row in rows]

    def order_shipments(self, since: float, warehouse: str | None = None) -> list[dict[str, Any]]:
        """Each `shipment_confirmation` received since `since` with the `shipment_order` it answers
        (same order number and warehouse; the first release when the order came several times):
        {warehouse, order_number, shipment_number, released_at, shipped_at, lead_seconds}."""
        p = self._database.placeholder
        extra, parameters = ("AND s.warehouse = " + p, (since, warehouse)) if warehouse else ("", (since,))
        rows = self._database.select(
            "SELECT s.warehouse, s.order_number, s.document_number, MIN(o.received_at), "
            "COALESCE(s.occurred_at, s.received_at) FROM esb_document s JOIN esb_document o "
            "ON o.type = 'shipment_order' AND o.order_number = s.order_number "
            "AND (o.warehouse = s.warehouse OR o.warehouse IS NULL OR s.warehouse IS NULL) "
            f"WHERE s.type = 'shipment_confirmation' AND s.received_at >= {p} {extra} "
            "GROUP BY s.message_id, s.warehouse, s.order_number, s.document_number, s.occurred_at, "
            "s.received_at ORDER BY 5", parameters)
        return [{"warehouse": row[0], "order_number": row[1], "shipment_number": row[2],
                 "released_at": row[3], "shipped_at": row[4], "lead_seconds": row[4] - row[3]}
                for row in rows]

    def receipt_postings(self, since: float, warehouse: str | None = None) -> list[dict[str, Any]]:
        """Each `goods_receipt` received since `since` and posted to its target: {warehouse,
        receipt_number, purchase_order_number, received_at (the WMS's receipt time), posted_at,
        lead_seconds}."""
        rows = [row for row in self.documents(type="goods_receipt", since=since, warehouse=warehouse)
                if row["posted_at"] is not None]
        postings = []
        for row in rows:
            received = row["occurred_at"] or row["received_at"]
            postings.append({"warehouse": row["warehouse"], "receipt_number": row["document_number"],
                             "purchase_order_number": row["order_number"], "received_at": received,
                             "posted_at": row["posted_at"], "lead_seconds": row["posted_at"] - received})
        return postings

    def documents_per_day(self, since: float, warehouse: str | None = None) -> list[dict[str, Any]]:
        """{day (UTC), route, type, warehouse, documents} of the documents received since `since`,
        counted by the database (integer division of the epoch: the same on SQLite and PostgreSQL)."""
        from datetime import UTC, datetime

        p = self._database.placeholder
        extra, parameters = ("AND warehouse = " + p, (since, warehouse)) if warehouse else ("", (since,))
        rows = self._database.select(
            "SELECT CAST(received_at AS BIGINT) / 86400 AS day, route, type, COALESCE(warehouse, ''), "
            "COUNT(*) "
            f"FROM esb_document WHERE received_at >= {p} {extra} "
            "GROUP BY day, route, type, COALESCE(warehouse, '') ORDER BY day, route, type, 4", parameters)
        return [{"day": datetime.fromtimestamp(int(day) * 86400, UTC).date().isoformat(), "route": route,
                 "type": kind, "warehouse": house, "documents": int(count)}
                for day, route, kind, house, count in rows]

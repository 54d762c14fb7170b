"""Inventory accuracy over time: one row per reconciliation (warehouse, cut-off, accuracy, lines
compared and differing), kept in the aggregator's state database by the reconciling aggregate
source, read by `/api/reports/inventory-accuracy` (JSON or CSV) and the Prometheus gauges
`esb_inventory_accuracy{warehouse}` and `esb_inventory_discrepancy_lines{warehouse}` (the newest
reconciliation of each warehouse, read from the database at scrape time, so every node shows the
same figure whichever node reconciled)."""

from __future__ import annotations

import csv
import io
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from esb.database import Database, transaction

COLUMNS = ("warehouse", "as_of", "accuracy", "compared_lines", "differing_lines", "book_snapshot_id",
           "shelf_snapshot_id", "recorded_at")
_SCHEMA = """CREATE TABLE IF NOT EXISTS esb_inventory_accuracy (
    warehouse TEXT NOT NULL,
    as_of TEXT NOT NULL,
    accuracy DOUBLE PRECISION NOT NULL,
    compared_lines INTEGER NOT NULL,
    differing_lines INTEGER NOT NULL,
    book_snapshot_id TEXT NOT NULL,
    shelf_snapshot_id TEXT NOT NULL,
    recorded_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (warehouse, as_of, book_snapshot_id, shelf_snapshot_id))"""


class AccuracyHistory:
    def __init__(self, target: str | Path):
        self._database = Database(target)
        database = self._database
        with closing(database.connect()) as connection, database.schema_transaction(connection) as cursor:
            cursor.execute(_SCHEMA)

    def record(self, discrepancy: dict[str, Any], now: float | None = None) -> None:
        """Keep one `inventory_discrepancy`'s figures; the same reconciliation twice is kept once."""
        row = (discrepancy["warehouse"], discrepancy["as_of"], float(discrepancy["accuracy"]),
               int(discrepancy.get("compared_lines", 0)), len(discrepancy.get("lines") or []),
               discrepancy["book_snapshot_id"], discrepancy["shelf_snapshot_id"],
               time.time() if now is None else now)
        with closing(self._database.connect()) as connection, transaction(connection) as cursor:
            cursor.execute(f"INSERT INTO esb_inventory_accuracy ({', '.join(COLUMNS)}) VALUES "
                           f"({self._database.params(len(COLUMNS))}) ON CONFLICT "
                           "(warehouse, as_of, book_snapshot_id, shelf_snapshot_id) DO NOTHING", row)

    def rows(self, warehouse: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """The reconciliations, newest cut-off first (of one warehouse when given)."""
        where, parameters = ("WHERE warehouse = " + self._database.placeholder, (warehouse,)) if warehouse \
            else ("", ())
        with closing(self._database.connect()) as connection:
            cursor = connection.cursor()
            cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM esb_inventory_accuracy {where} "
                           f"ORDER BY as_of DESC, recorded_at DESC LIMIT {int(limit)}", parameters)
            return [dict(zip(COLUMNS, row, strict=True)) for row in cursor.fetchall()]

    def latest(self) -> dict[str, dict[str, Any]]:
        """{warehouse: its newest reconciliation (by the time it was recorded)}."""
        newest: dict[str, dict[str, Any]] = {}
        for row in sorted(self.rows(limit=100_000), key=lambda r: r["recorded_at"], reverse=True):
            newest.setdefault(row["warehouse"], row)
        return newest


def as_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


class AccuracyCollector:
    """The Prometheus gauges of the newest reconciliation per warehouse (see the module docstring)."""

    def __init__(self, history: AccuracyHistory):
        self.history = history

    def collect(self):
        accuracy = GaugeMetricFamily("esb_inventory_accuracy", "Share of compared stock lines whose book "
                                     "and shelf quantities agree, newest reconciliation",
                                     labels=["warehouse"])
        differing = GaugeMetricFamily("esb_inventory_discrepancy_lines", "Stock lines differing beyond the "
                                      "tolerance, newest reconciliation", labels=["warehouse"])
        try:
            latest = self.history.latest()
        except Exception:  # a scrape answers even when the database does not
            latest = {}
        for warehouse, row in sorted(latest.items()):
            accuracy.add_metric([warehouse], row["accuracy"])
            differing.add_metric([warehouse], row["differing_lines"])
        yield accuracy
        yield differing

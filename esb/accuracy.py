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
from decimal import Decimal
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


_LINE_COLUMNS = ("warehouse", "as_of", "book_snapshot_id", "shelf_snapshot_id", "line_number", "sku", "lot",
                 "location", "uom", "book_quantity", "shelf_quantity", "difference", "recorded_at")
_LINE_SCHEMA = """CREATE TABLE IF NOT EXISTS esb_discrepancy_line (
    warehouse TEXT NOT NULL,
    as_of TEXT NOT NULL,
    book_snapshot_id TEXT NOT NULL,
    shelf_snapshot_id TEXT NOT NULL,
    line_number INTEGER NOT NULL,
    sku TEXT NOT NULL,
    lot TEXT,
    location TEXT,
    uom TEXT NOT NULL,
    book_quantity TEXT NOT NULL,
    shelf_quantity TEXT NOT NULL,
    difference TEXT NOT NULL,
    recorded_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (warehouse, as_of, book_snapshot_id, shelf_snapshot_id, line_number))"""
ITEM_COLUMNS = ("warehouse", "sku", "uom", "reconciliations", "absolute_difference", "net_difference",
                "last_difference", "last_as_of", "locations")


class AccuracyHistory:
    def __init__(self, target: str | Path):
        self._database = Database(target)
        database = self._database
        with closing(database.connect()) as connection, database.schema_transaction(connection) as cursor:
            cursor.execute(_SCHEMA)
            cursor.execute(_LINE_SCHEMA)

    def record(self, discrepancy: dict[str, Any], now: float | None = None) -> None:
        """Keep one `inventory_discrepancy`'s figures; the same reconciliation twice is kept once."""
        row = (discrepancy["warehouse"], discrepancy["as_of"], float(discrepancy["accuracy"]),
               int(discrepancy.get("compared_lines", 0)), len(discrepancy.get("lines") or []),
               discrepancy["book_snapshot_id"], discrepancy["shelf_snapshot_id"],
               time.time() if now is None else now)
        head = (row[0], row[1], row[5], row[6])
        lines = [(*head, line.get("line_number", number), line["sku"], line.get("lot"), line.get("location"),
                  line["uom"], str(line["book_quantity"]), str(line["shelf_quantity"]),
                  str(line["difference"]), row[7])
                 for number, line in enumerate(discrepancy.get("lines") or [], 1)]
        with closing(self._database.connect()) as connection, transaction(connection) as cursor:
            cursor.execute(f"INSERT INTO esb_inventory_accuracy ({', '.join(COLUMNS)}) VALUES "
                           f"({self._database.params(len(COLUMNS))}) ON CONFLICT "
                           "(warehouse, as_of, book_snapshot_id, shelf_snapshot_id) DO NOTHING", row)
            if cursor.rowcount == 1 and lines:
                cursor.executemany(f"INSERT INTO esb_discrepancy_line ({', '.join(_LINE_COLUMNS)}) VALUES "
                                   f"({self._database.params(len(_LINE_COLUMNS))})", lines)

    def by_item(self, warehouse: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        """Discrepancies per (warehouse, sku, uom) over the reconciliations recorded since `since`:
        how often the item differed, the sum of |difference| and of the differences, the newest
        difference and its cut-off, the bins involved; largest absolute difference first.
        Quantities are summed as Decimal (they are stored as text)."""
        clause, parameters = self._database.where({"warehouse": warehouse or None}, ("recorded_at", since))
        rows = self._database.select(
            f"SELECT warehouse, sku, uom, location, difference, as_of, recorded_at "
            f"FROM esb_discrepancy_line {clause} ORDER BY recorded_at, as_of", parameters)
        items: dict[tuple, dict[str, Any]] = {}
        for house, sku, uom, location, difference, as_of, _ in rows:
            item = items.setdefault((house, sku, uom), {
                "warehouse": house, "sku": sku, "uom": uom, "reconciliations": 0,
                "absolute_difference": Decimal(0), "net_difference": Decimal(0), "locations": set()})
            amount = Decimal(difference)
            item["reconciliations"] += 1
            item["absolute_difference"] += abs(amount)
            item["net_difference"] += amount
            item["last_difference"], item["last_as_of"] = amount, as_of
            if location:
                item["locations"].add(location)
        result = sorted(items.values(), key=lambda item: (-item["absolute_difference"], item["sku"]))
        for item in result:
            item["locations"] = " ".join(sorted(item["locations"]))
        return [{column: item[column] for column in ITEM_COLUMNS} for item in result]

    def latest_lines(self) -> dict[str, Decimal]:
        """{warehouse: sum of |difference| of its newest reconciliation}."""
        totals = {}
        for house, row in self.latest().items():
            p = self._database.placeholder
            with closing(self._database.connect()) as connection:
                cursor = connection.cursor()
                cursor.execute(f"SELECT difference FROM esb_discrepancy_line WHERE warehouse = {p} "
                               f"AND as_of = {p} AND book_snapshot_id = {p} AND shelf_snapshot_id = {p}",
                               (house, row["as_of"], row["book_snapshot_id"], row["shelf_snapshot_id"]))
                totals[house] = sum((abs(Decimal(d)) for (d,) in cursor.fetchall()), Decimal(0))
        return totals

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


def as_csv(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n", extrasaction="ignore")
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
        quantity = GaugeMetricFamily("esb_inventory_discrepancy_quantity", "Sum of the absolute differences "
                                     "between book and shelf, newest reconciliation (in the lines' units)",
                                     labels=["warehouse"])
        try:
            totals = self.history.latest_lines()
        except Exception:
            totals = {}
        for warehouse, row in sorted(latest.items()):
            accuracy.add_metric([warehouse], row["accuracy"])
            differing.add_metric([warehouse], row["differing_lines"])
            quantity.add_metric([warehouse], float(totals.get(warehouse, 0)))
        yield accuracy
        yield differing
        yield quantity

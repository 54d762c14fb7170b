"""The live reports of the business flows, for a report tool (`/api/reports/...`, JSON or CSV) and
for Prometheus (gauges per warehouse, read from the state database at scrape time, so every node
shows the same figures):

- `discrepancies-by-item`: per warehouse, item and unit, how often it differed and the sums
  (gauge `esb_inventory_discrepancy_quantity{warehouse}`, esb.accuracy);
- `documents-per-day`: per UTC day, route, type and warehouse, the documents delivered
  (`esb_documents_today{route, type, warehouse}`);
- `order-to-shipment`: per shipment, its order's release, its shipping time, the lead time
  (`esb_order_to_shipment_seconds_average{warehouse}`, `..._max`);
- `receipt-to-posting`: per goods receipt, the WMS's receipt time, the posting, the lead time
  (`esb_receipt_to_posting_seconds_average{warehouse}`, `..._max`);
- `open-alerts`: the alerts fired in the last `hours` (default 24, the de-duplication time)
  (`esb_alerts_open{warehouse, severity}`).

Lead times: an order is released when the bus received it from the ERP, shipped at the
confirmation's `shipped_at`; a receipt is received at the goods receipt's `received_at` (the
WMS's time) and posted when the bus first delivered it to its target (`esb.ledger`). The gauges
cover the last `GAUGE_WINDOW` seconds (a day), the reports `days` days (default 7).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from esb.accuracy import AccuracyHistory
from esb.alerts import AlertOutbox
from esb.ledger import DocumentLedger

GAUGE_WINDOW = 86400.0
"""Seconds of lead times and alerts the gauges cover (a day); documents count the current UTC day."""

DEFAULT_DAYS = 7
"""Days a report covers unless `days` says otherwise."""

OPEN_ALERT_HOURS = 24
"""An alert is open for this many hours after it fired (the outbox's default de-duplication time)."""

COLUMNS = {
    "documents-per-day": ("day", "route", "type", "warehouse", "documents"),
    "order-to-shipment": ("warehouse", "order_number", "shipment_number", "released_at", "shipped_at",
                          "lead_seconds"),
    "receipt-to-posting": ("warehouse", "receipt_number", "purchase_order_number", "received_at", "posted_at",
                           "lead_seconds"),
    "open-alerts": ("fired_at", "rule", "severity", "warehouse", "subject", "firings", "state", "outbox"),
}


def summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """{warehouse: {count, average_seconds, max_seconds}} of lead-time rows."""
    by_warehouse: dict[str, list[float]] = {}
    for row in rows:
        by_warehouse.setdefault(row["warehouse"] or "", []).append(float(row["lead_seconds"]))
    return {house: {"count": len(leads), "average_seconds": round(sum(leads) / len(leads), 3),
                    "max_seconds": round(max(leads), 3)} for house, leads in sorted(by_warehouse.items())}


class LiveReports:
    """The reports over one state database (see the module docstring)."""

    def __init__(self, target: str | Path):
        self.ledger = DocumentLedger(target, writer=False)  # reads only: the runtime's ledger writes
        self.history = AccuracyHistory(target)
        self.outbox = AlertOutbox(target)

    def rows(self, report: str, *, days: float = DEFAULT_DAYS, warehouse: str | None = None,
             hours: float = OPEN_ALERT_HOURS, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        since = now - days * 86400
        if report == "discrepancies-by-item":
            return self.history.by_item(warehouse, since)
        if report == "documents-per-day":
            return self.ledger.documents_per_day(since, warehouse)
        if report == "order-to-shipment":
            return self.ledger.order_shipments(since, warehouse)
        if report == "receipt-to-posting":
            return self.ledger.receipt_postings(since, warehouse)
        if report == "open-alerts":
            alerts = self.outbox.recent(now - hours * 3600)
            return [alert for alert in alerts if not warehouse or alert.get("warehouse") == warehouse]
        raise KeyError(report)


class ReportsCollector:
    """The gauges of the live reports (see the module docstring)."""

    def __init__(self, reports: LiveReports):
        self.reports = reports

    def collect(self):
        now = time.time()
        documents = GaugeMetricFamily("esb_documents_today", "Documents delivered today (UTC), per route, "
                                      "type and warehouse", labels=["route", "type", "warehouse"])
        leads = {name: (GaugeMetricFamily(f"esb_{name}_seconds_average", f"Average {what} lead time over the "
                                          "last day, seconds", labels=["warehouse"]),
                        GaugeMetricFamily(f"esb_{name}_seconds_max", f"Longest {what} lead time over the "
                                          "last day, seconds", labels=["warehouse"]))
                 for name, what in (("order_to_shipment", "order-to-shipment"),
                                    ("receipt_to_posting", "receipt-to-posting"))}
        alerts = GaugeMetricFamily("esb_alerts_open", "Alerts fired in the last day, per warehouse ('' for "
                                   "the bus's own) and severity", labels=["warehouse", "severity"])
        try:
            today = now - now % 86400
            for row in self.reports.ledger.documents_per_day(today):
                documents.add_metric([row["route"], row["type"], row["warehouse"]], row["documents"])
            ledger = self.reports.ledger
            for name, rows in (("order_to_shipment", ledger.order_shipments(now - GAUGE_WINDOW)),
                               ("receipt_to_posting", ledger.receipt_postings(now - GAUGE_WINDOW))):
                for house, figures in summary(rows).items():
                    leads[name][0].add_metric([house], figures["average_seconds"])
                    leads[name][1].add_metric([house], figures["max_seconds"])
            counts: dict[tuple[str, str], int] = {}
            for alert in self.reports.outbox.recent(now - GAUGE_WINDOW):
                key = (alert.get("warehouse") or "", alert.get("severity") or "warning")
                counts[key] = counts.get(key, 0) + 1
            for key, count in sorted(counts.items()):
                alerts.add_metric(list(key), count)
        except Exception:  # a scrape answers even when the database does not
            pass
        yield documents
        for average, longest in leads.values():
            yield average
            yield longest
        yield alerts

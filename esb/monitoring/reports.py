"""`/api/reports/...`: figures for a report tool to pull, as JSON or CSV (`?format=csv`), role viewer.

- `inventory-accuracy` (`esb.accuracy`): accuracy per warehouse and cut-off, newest first;
- `discrepancies-by-item`, `documents-per-day`, `order-to-shipment`, `receipt-to-posting`,
  `open-alerts` (`esb.reports`): `?warehouse=`, `?days=` (default 7; `open-alerts`: `?hours=`,
  default 24). The lead-time reports add a `summary` per warehouse to their JSON answer.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, request

from esb import jsonfmt
from esb.accuracy import ITEM_COLUMNS, AccuracyHistory, as_csv
from esb.monitoring.arguments import int_argument
from esb.monitoring.auth import Access
from esb.reports import COLUMNS, DEFAULT_DAYS, OPEN_ALERT_HOURS, LiveReports, summary

MAX_REPORT_ROWS = 10_000
"""The most rows one report answer holds (`limit`, default 1,000)."""

MAX_DAYS = 366
"""The longest period a report covers (`days`)."""

REPORTS = ("discrepancies-by-item", "documents-per-day", "order-to-shipment", "receipt-to-posting",
           "open-alerts")
LEAD_TIMES = ("order-to-shipment", "receipt-to-posting")


def _wanted_format() -> str:
    wanted = request.args.get("format", "json")
    if wanted not in ("json", "csv"):
        abort(400, description="format must be json or csv")
    return wanted


def _csv(text: str, name: str) -> Response:
    return Response(text, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


def add_report_views(blueprint: Blueprint, access: Access, history: AccuracyHistory,
                     reports: LiveReports | None = None) -> None:
    @blueprint.get("/api/reports/inventory-accuracy")
    @access.requires("viewer")
    def inventory_accuracy():
        wanted = _wanted_format()
        limit = int_argument("limit", 1000, 1, MAX_REPORT_ROWS)
        rows = history.rows(warehouse=request.args.get("warehouse") or None, limit=limit)
        if wanted == "csv":
            return _csv(as_csv(rows), "inventory-accuracy")
        return jsonify(items=rows)

    if reports is None:
        return

    def view(report: str):
        def answer():
            wanted = _wanted_format()
            days = int_argument("days", DEFAULT_DAYS, 1, MAX_DAYS)
            alerts = report == "open-alerts"
            hours = int_argument("hours", OPEN_ALERT_HOURS, 1, MAX_DAYS * 24) if alerts else 0
            limit = int_argument("limit", 1000, 1, MAX_REPORT_ROWS)
            warehouse = request.args.get("warehouse") or None
            rows = reports.rows(report, days=days, hours=hours, warehouse=warehouse)
            if wanted == "csv":
                return _csv(as_csv(rows[:limit], COLUMNS.get(report, ITEM_COLUMNS)), report)
            body = {"items": rows[:limit], "total": len(rows)}
            if report in LEAD_TIMES:
                body["summary"] = summary(rows)
            return Response(jsonfmt.dump_bytes(body), mimetype="application/json")

        answer.__name__ = "report_" + report.replace("-", "_")
        return access.requires("viewer")(answer)

    for report in REPORTS:
        blueprint.add_url_rule(f"/api/reports/{report}", view_func=view(report), methods=["GET"])

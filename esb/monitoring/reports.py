"""`/api/reports/...`: figures for a report tool to pull, as JSON or CSV (`?format=csv`)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, request

from esb.accuracy import AccuracyHistory, as_csv
from esb.monitoring.arguments import int_argument
from esb.monitoring.auth import Access

MAX_REPORT_ROWS = 10_000
"""The most rows one report answer holds (`limit`, default 1,000)."""


def add_report_views(blueprint: Blueprint, access: Access, history: AccuracyHistory) -> None:
    @blueprint.get("/api/reports/inventory-accuracy")
    @access.requires("viewer")
    def inventory_accuracy():
        wanted = request.args.get("format", "json")
        if wanted not in ("json", "csv"):
            abort(400, description="format must be json or csv")
        limit = int_argument("limit", 1000, 1, MAX_REPORT_ROWS)
        rows = history.rows(warehouse=request.args.get("warehouse") or None, limit=limit)
        if wanted == "csv":
            return Response(as_csv(rows), mimetype="text/csv",
                            headers={"Content-Disposition": 'attachment; filename="inventory-accuracy.csv"'})
        return jsonify(items=rows)

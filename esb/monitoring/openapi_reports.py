"""The live reports' part of the OpenAPI document (`esb.monitoring.openapi`): their paths, the
parameters only they take, and the schema of their JSON answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_OBJECT = {"type": "object", "additionalProperties": True}
_REPORT_ANSWER = {
    "description": "The report's rows (esb.reports); `summary` per warehouse for lead times",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Report"}},
        "text/csv": {"schema": {"type": "string"}},
    },
}
_REPORTS = {
    "discrepancies-by-item": "Discrepancies per warehouse, item and unit over the reconciliations of the "
    "last days, largest first",
    "documents-per-day": "Documents delivered per day (UTC), route, type and warehouse",
    "order-to-shipment": "Lead time of each shipment from its order's release",
    "receipt-to-posting": "Lead time of each goods receipt from the WMS's receipt to the posting",
    "open-alerts": "Alerts fired in the last hours (open until their de-duplication time passed)",
}


def report_paths(operation: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """The paths of the reports of `esb.reports`, each built by `operation` (openapi's `_operation`)."""
    paths = {}
    for report, summary in _REPORTS.items():
        parameters = ("warehouse", "report_format", "report_days", "report_limit")
        if report == "open-alerts":
            parameters += ("report_hours",)
        paths[f"/api/reports/{report}"] = {
            "get": operation(f"{summary} (JSON or CSV)", "viewer", _REPORT_ANSWER, parameters=parameters,
                             missing=False)
        }
    return paths


REPORT_PARAMETERS: dict[str, Any] = {
    "report_days": {
        "name": "days",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 366, "default": 7},
        "description": "The last days the report covers",
    },
    "report_hours": {
        "name": "hours",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 8784, "default": 24},
        "description": "Alerts fired in the last hours",
    },
}

REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["items", "total"],
    "properties": {
        "items": {"type": "array", "items": _OBJECT},
        "total": {"type": "integer", "minimum": 0},
        "summary": {"type": "object", "additionalProperties": _OBJECT},
    },
}

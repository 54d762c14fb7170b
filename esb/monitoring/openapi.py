"""The OpenAPI 3 document of the admin API (`GET /api/openapi.json`); the schemathesis test
checks every answer of the app against it."""

from __future__ import annotations

from typing import Any

from esb.monitoring.openapi_components import COMPONENTS
from esb.monitoring.openapi_reports import report_paths


def _answer(description: str, schema: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if schema:
        answer["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    return answer


def _operation(
    summary: str,
    role: str,
    ok: dict[str, Any],
    *,
    parameters: tuple[str, ...] = (),
    body: bool = False,
    missing: bool = True,
) -> dict[str, Any]:
    responses = {"200": ok, "401": _answer("No valid key", "Error"), "403": _answer(f"Not a {role}", "Error")}
    if missing:
        responses["404"] = _answer("Unknown route, destination or message", "Error")
    if body or parameters:
        responses["400"] = _answer("Bad parameters", "Error")
    if role == "admin" or "route" in parameters:
        responses["503"] = _answer("The broker cannot be reached", "Error")
    operation: dict[str, Any] = {
        "summary": f"{summary} (role: {role})",
        "x-esb-role": role,  # the role the operation needs, for the role-matrix test
        "responses": responses,
        "parameters": [{"$ref": f"#/components/parameters/{p}"} for p in parameters],
    }
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Selection"}}},
        }
    return operation


_OBJECT = {"type": "object", "additionalProperties": True}

_ACCURACY_ANSWER = {
    "description": "The reconciliations (esb.accuracy)",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Accuracy"}},
        "text/csv": {"schema": {"type": "string"}},
    },
}
OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "esb admin API",
        "version": "1",
        "description": "Routes, dead letters, message traces and the audit log of the bus. Send a key "
        "as `Authorization: Bearer <key>` or `X-API-Key: <key>`; `viewer` reads, "
        "`admin` also replays and purges (every admin action is audited).",
    },
    "security": [{"bearer": []}, {"apiKey": []}],
    "paths": {
        "/metrics": {
            "get": {
                **_operation(
                    "Prometheus metrics",
                    "viewer",
                    {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    missing=False,
                )
            }
        },
        "/api/whoami": {
            "get": _operation(
                "Who the key belongs to", "viewer", _answer("The caller", "Whoami"), missing=False
            )
        },
        "/api/routes": {
            "get": _operation(
                "Every route with its state and counters",
                "viewer",
                _answer("The routes", "Routes"),
                missing=False,
            )
        },
        "/api/routes/{route}": {
            "get": _operation("One route", "viewer", _answer("The route", "Route"), parameters=("route",))
        },
        "/api/routes/{route}/dead-letters": {
            "get": _operation(
                "A page of dead letters (every destination and raw inbound input, or one destination)",
                "viewer",
                _answer("A page", "DeadLetterPage"),
                parameters=("route", "destination", "offset", "limit", "view"),
            )
        },
        "/api/routes/{route}/dead-letters/{message_id}": {
            "get": _operation(
                "One dead letter with its headers and body",
                "viewer",
                _answer("The dead letter", "DeadLetter"),
                parameters=("route", "message_id", "destination"),
            )
        },
        "/api/routes/{route}/dead-letters/{message_id}/replay": {
            "post": _operation(
                "Send one dead letter back to its destination's work queue",
                "admin",
                _answer("Done", "Done"),
                parameters=("route", "message_id", "destination"),
            )
        },
        "/api/routes/{route}/dead-letters/replay": {
            "post": _operation(
                "Replay some (ids) or all dead letters of a route or destination",
                "admin",
                _answer("Done", "Done"),
                parameters=("route",),
                body=True,
            )
        },
        "/api/routes/{route}/dead-letters/purge": {
            "post": _operation(
                "Delete some (ids) or all dead letters of a route or destination",
                "admin",
                _answer("Done", "Done"),
                parameters=("route",),
                body=True,
            )
        },
        "/api/routes/{route}/pause": {
            "post": _operation(
                "Stop consuming a route's destinations (or one): messages wait in their queues",
                "admin",
                _answer("Paused", "PauseResult"),
                parameters=("route", "destination"),
            )
        },
        "/api/routes/{route}/resume": {
            "post": _operation(
                "Consume a paused route's destinations (or one) again",
                "admin",
                _answer("Resumed", "PauseResult"),
                parameters=("route", "destination"),
            )
        },
        "/api/trace": {
            "get": _operation(
                "Every hop of a message, or of all messages of a correlation id",
                "viewer",
                _answer("The hops, oldest first", "Trace"),
                parameters=("message_id_query", "correlation_id", "document_number"),
            )
        },
        "/api/activity": {
            "get": _operation(
                "Deliveries and errors of the last hour, per minute, oldest first (the dashboard's charts)",
                "viewer",
                _answer("Counts per minute", "Activity"),
                missing=False,
            )
        },
        "/api/audit": {
            "get": _operation(
                "The newest audit entries, newest first",
                "admin",
                _answer("Entries", "Audit"),
                parameters=("audit_limit",),
                missing=False,
            )
        },
        "/api/reports/inventory-accuracy": {
            "get": _operation(
                "Inventory accuracy per warehouse and cut-off, newest first (JSON or CSV)",
                "viewer",
                _ACCURACY_ANSWER,
                parameters=("warehouse", "report_format", "report_limit"),
                missing=False,
            )
        },
        **report_paths(_operation),
        "/api/openapi.json": {
            "get": _operation(
                "This document",
                "viewer",
                {"description": "OpenAPI 3", "content": {"application/json": {"schema": _OBJECT}}},
                missing=False,
            )
        },
    },
    "components": COMPONENTS,
}

"""The `components` of the admin API's OpenAPI document (`esb.monitoring.openapi`): security
schemes, shared parameters and the schemas of the answers."""

from __future__ import annotations

from typing import Any

from esb.monitoring.arguments import (
    DEFAULT_AUDIT_ENTRIES,
    DEFAULT_PAGE_SIZE,
    MAX_AUDIT_ENTRIES,
    MAX_PAGE_SIZE,
)
from esb.monitoring.openapi_reports import REPORT_PARAMETERS, REPORT_SCHEMA

_ACCURACY_ROW = {
    "type": "object",
    "properties": {
        "warehouse": {"type": "string"},
        "as_of": {"type": "string"},
        "accuracy": {"type": "number"},
        "compared_lines": {"type": "integer"},
        "differing_lines": {"type": "integer"},
        "book_snapshot_id": {"type": "string"},
        "shelf_snapshot_id": {"type": "string"},
        "recorded_at": {"type": "number"},
    },
}
_TEXT_OR_NULL = {"type": "string", "nullable": True}
_OBJECT = {"type": "object", "additionalProperties": True}


def _limit(maximum: int, default: int) -> dict[str, Any]:
    """A `limit` query parameter, 1 to `maximum`."""
    return {"name": "limit", "in": "query", "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}}


COMPONENTS: dict[str, Any] = {
    "securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    },
    "parameters": {
        "route": {"name": "route", "in": "path", "required": True, "schema": {"type": "string"}},
        "message_id": {
            "name": "message_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
        },
        "destination": {
            "name": "destination",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "One destination of the route",
        },
        "offset": {
            "name": "offset",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 0, "default": 0},
        },
        "limit": _limit(MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE),
        "audit_limit": _limit(MAX_AUDIT_ENTRIES, DEFAULT_AUDIT_ENTRIES),
        "view": {
            "name": "view",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": ["summary", "full"], "default": "summary"},
            "description": "full: each item with its headers and body, as one dead letter is shown",
        },
        "warehouse": {
            "name": "warehouse",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "One warehouse only",
        },
        "report_format": {
            "name": "format",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": ["json", "csv"], "default": "json"},
        },
        "report_limit": {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000},
        },
        **REPORT_PARAMETERS,
        "message_id_query": {
            "name": "message_id",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "Give exactly one of message_id, correlation_id, document_number (else 400)",
        },
        "correlation_id": {
            "name": "correlation_id",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "Give exactly one of message_id, correlation_id, document_number (else 400)",
        },
        "document_number": {
            "name": "document_number",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "The business document's number (order, receipt, ...): every message made "
            "from it, and the dead letters of raw input that named it. Give exactly one of "
            "message_id, correlation_id and document_number (else 400)",
        },
    },
    "schemas": {
        "Accuracy": {
            "type": "object",
            "required": ["items"],
            "properties": {"items": {"type": "array", "items": _ACCURACY_ROW}},
        },
        "Report": REPORT_SCHEMA,
        "Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
        },
        "Whoami": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "admin": {"type": "boolean"},
                "roles": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Counters": {
            "type": "object",
            "additionalProperties": {"type": "integer"},
            "description": "received, published, delivered, retried, dead_lettered, rejected",
        },
        "Route": {
            "type": "object",
            "required": ["name", "state", "counters", "destinations"],
            "properties": {
                "name": {"type": "string"},
                "source": {"type": "string"},
                "state": {
                    "type": "string",
                    "enum": ["running", "degraded", "paused", "stopped", "disconnected", "unknown"],
                },
                "counters": {"$ref": "#/components/schemas/Counters"},
                "last_success": {"type": "number", "nullable": True, "description": "Unix time"},
                "last_error": {"type": "object", "nullable": True, "additionalProperties": True},
                "dead_letter_depth": {"type": "integer", "nullable": True},
                "destinations": {"type": "array", "items": _OBJECT},
            },
        },
        "Routes": {
            "type": "object",
            "properties": {
                "broker_connected": {"type": "boolean"},
                "routes": {"type": "array", "items": {"$ref": "#/components/schemas/Route"}},
            },
        },
        "DeadLetterSummary": {
            "type": "object",
            "properties": {
                "id": _TEXT_OR_NULL,
                "correlation_id": _TEXT_OR_NULL,
                "route": {"type": "string"},
                "destination": _TEXT_OR_NULL,
                "attempts": {"type": "integer"},
                "reason": _TEXT_OR_NULL,
                "last_error": _TEXT_OR_NULL,
                "last_failed_at": _TEXT_OR_NULL,
                "dead_lettered_at": _TEXT_OR_NULL,
            },
        },
        "DeadLetter": {
            "allOf": [
                {"$ref": "#/components/schemas/DeadLetterSummary"},
                {
                    "type": "object",
                    "properties": {
                        "headers": _OBJECT,
                        "body": {},
                        "type": _TEXT_OR_NULL,
                        "content_type": _TEXT_OR_NULL,
                    },
                },
            ]
        },
        "DeadLetterPage": {
            "type": "object",
            "properties": {
                "offset": {"type": "integer"},
                "limit": {"type": "integer"},
                "next_offset": {"type": "integer", "nullable": True},
                "total": {"type": "integer", "nullable": True},
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/DeadLetter"},
                          "description": "summaries, or with headers and body for view=full"},
            },
        },
        "Selection": {
            "type": "object",
            "properties": {
                "ids": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                "all": {"type": "boolean", "enum": [True]},
                "destination": {"type": "string", "nullable": True},
            },
            "oneOf": [{"required": ["ids"]}, {"required": ["all"]}],
            "description": 'Either {"ids": [...]} or {"all": true}; "destination" narrows to one.',
        },
        "Done": {
            "type": "object",
            "properties": {
                "action": {"type": "string"},
                "count": {"type": "integer"},
                "ids": {"type": "array", "items": {"type": "string"}},
                "missing": {"type": "array", "items": {"type": "string"}},
                "audit": _OBJECT,
            },
        },
        "PauseResult": {
            "type": "object",
            "required": ["action", "route", "destinations", "paused"],
            "properties": {
                "action": {"type": "string", "enum": ["pause", "resume"]},
                "route": {"type": "string"},
                "destinations": {"type": "array", "items": {"type": "string"}},
                "paused": {"type": "array", "items": {"type": "string"},
                           "description": "the route's destinations paused now"},
                "audit": _OBJECT,
            },
        },
        "Trace": {"type": "object", "properties": {"hops": {"type": "array", "items": _OBJECT}}},
        "Audit": {"type": "object", "properties": {"entries": {"type": "array", "items": _OBJECT}}},
        "Activity": {
            "type": "object",
            "required": ["since", "bucket_seconds", "delivered", "errors"],
            "properties": {
                "since": {"type": "number", "description": "epoch seconds of the first bucket's start"},
                "bucket_seconds": {"type": "number"},
                "delivered": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                "errors": {"type": "array", "items": {"type": "integer", "minimum": 0},
                           "description": "rejected, retried and dead-lettered"},
            },
        },
    },
}

"""REST over HTTP: inbound `POST /in/<route>` (a push source) and outbound calls (a sink).

Only the config spec lives here for now; the source and sink come with the HTTP issue.

Options are JSON-Schema fragments. Keywords the bus adds (see `esb.config`):
`x-esb-role` ("source" or "sink") marks an option that only one side takes, `x-esb-path`
marks a file path (resolved relative to the routes file), `x-esb-source-required` /
`x-esb-sink-required` list what each side needs.
"""

from __future__ import annotations

from pathlib import Path

from esb.durations import DURATION_PATTERN
from esb.plugins import AdapterSpec, register

DEFAULT_TIMEOUT = 30.0
"""Seconds an outbound call may take (connect plus read) before it counts as a retryable failure."""

DEFAULT_MAX_BODY_BYTES = 1_048_576
"""Largest request body an inbound endpoint accepts (1 MiB); a larger one is refused with 413."""

DEFAULT_SUCCESS_CODES = [200, 201, 202, 204]


def _duration(description: str, default: float | str | None, **extra) -> dict:
    """A duration option: seconds as a number, or a string such as 500ms, 10s, 2m."""
    types = ["number", "string"] if default is not None else ["number", "string", "null"]
    return {"type": types, "minimum": 0, "pattern": DURATION_PATTERN,
            "description": description, "default": default, **extra}


SYSTEM_SCHEMA = {
    "type": "object",
    "description": "How to reach a system's HTTP API. Secrets come from ${ENV} variables.",
    "additionalProperties": False,
    "required": ["base_url"],
    "properties": {
        "base_url": {"type": "string", "pattern": "^https?://",
                     "x-esb-expected": "an http:// or https:// URL",
                     "description": "Base URL of the API (http:// or https://); a destination's path is "
                                    "appended to it."},
        "token": {"type": ["string", "null"], "default": None,
                  "description": "Bearer token sent as `Authorization: Bearer ...`."},
        "username": {"type": ["string", "null"], "default": None,
                     "description": "User for HTTP basic authentication (with password)."},
        "password": {"type": ["string", "null"], "default": None,
                     "description": "Password for HTTP basic authentication."},
        "api_key": {"type": ["string", "null"], "default": None,
                    "description": "API key sent in the api_key_header header."},
        "api_key_header": {"type": "string", "default": "X-API-Key",
                           "description": "Header that carries api_key."},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}, "default": {},
                    "description": "Extra headers sent with every call to this system."},
        "timeout": _duration("Seconds a call may take (connect plus read), or a duration such as 10s; "
                             "a timeout is a retryable failure.", DEFAULT_TIMEOUT),
        "verify_tls": {"type": "boolean", "default": True,
                       "description": "Check the server's TLS certificate. Turn off only for a test system."},
        "ca_file": {"type": ["string", "null"], "default": None, "x-esb-path": True,
                    "description": "PEM file of the CA that signed the server's certificate (a private CA); "
                                   "relative to the routes file."},
    },
}

ENDPOINT_SCHEMA = {
    "type": "object",
    "description": "from: an inbound endpoint `POST /in/<route>`; to: a call to a system's API.",
    "x-esb-source": True,
    "x-esb-sink": True,
    "x-esb-sink-required": ["system", "path"],
    "additionalProperties": False,
    "properties": {
        "system": {"type": ["string", "null"], "default": None,
                   "description": "The system (under systems:) this endpoint talks to; for a source, the "
                                  "sender, recorded as the message's source."},
        "format": {"enum": ["json", "xml"], "default": "json",
                   "description": "Body format: what the inbound endpoint accepts, or what a call sends."},
        # inbound (source) options
        "max_body_bytes": {"type": "integer", "minimum": 1, "default": DEFAULT_MAX_BODY_BYTES,
                           "x-esb-role": "source",
                           "description": "Largest body accepted, in bytes; larger ones get 413."},
        "auth": {"enum": ["token", "none"], "default": "token", "x-esb-role": "source",
                 "description": "token: the caller needs an API key or bearer token with the role "
                                "sender=<route> (from ESB_API_KEYS or ESB_CREDENTIALS_FILE, never from this "
                                "file); none: no credentials (tests and trusted networks only)."},
        "idempotency_key": {"type": ["string", "null"], "default": None, "x-esb-role": "source",
                            "description": "JMESPath over the decoded body giving the business key that "
                                           "de-duplicates re-posted documents; default: the caller's "
                                           "Idempotency-Key header, if any."},
        # outbound (sink) options
        "method": {"enum": ["POST", "PUT", "PATCH", "DELETE"], "default": "POST", "x-esb-role": "sink",
                   "description": "HTTP method of the call."},
        "path": {"type": "string", "x-esb-role": "sink",
                 "description": "Path appended to the system's base_url; {field} placeholders are filled "
                                "from the mapped document (dotted paths allowed) and URL-encoded, e.g. "
                                "/orders/{order_number}."},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}, "default": {},
                    "x-esb-role": "sink", "description": "Extra headers for this call."},
        "timeout": _duration("Seconds the call may take, or a duration; default: the system's timeout.",
                             None, **{"x-esb-role": "sink"}),
        "idempotency_header": {"type": "boolean", "default": True, "x-esb-role": "sink",
                               "description": "Send the message id as the Idempotency-Key header, so the "
                                              "target can ignore a redelivered message."},
        "success_codes": {"type": "array", "items": {"type": "integer", "minimum": 100, "maximum": 599},
                          "minItems": 1, "default": DEFAULT_SUCCESS_CODES, "x-esb-role": "sink",
                          "description": "Status codes that mean delivered. Otherwise 408, 429 and 5xx "
                                         "are retried and other codes dead-lettered."},
        "capture_id": {"type": ["string", "null"], "default": None, "x-esb-role": "sink",
                       "description": "JMESPath over the response body giving the id the target gave the "
                                      "document; it is recorded in the message's trace."},
    },
}


def check_endpoint(endpoint, system: dict | None, base_dir) -> list[str]:
    """The CA file of the system exists (other problems show only when a call is made)."""
    ca_file = (system or {}).get("ca_file")
    if ca_file and not Path(ca_file).is_file():
        return [f"CA file not found: {ca_file}"]
    return []


register(AdapterSpec(
    name="rest",
    summary="HTTP/JSON or XML: inbound POST /in/<route>, outbound calls to a system's API",
    endpoint_schema=ENDPOINT_SCHEMA,
    system_schema=SYSTEM_SCHEMA,
    source_factory=None,
    sink_factory=None,
    check=check_endpoint,
))

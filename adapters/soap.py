"""SOAP: poll an operation (a source), serve `POST /soap/<route>` (an inbound source), call an
operation (a sink).

Only the config spec lives here for now; the source and sink come with the SOAP issue (which also
checks that the operations exist in the WSDL). Keywords `x-esb-*`: see adapters/rest.py.
"""

from __future__ import annotations

from pathlib import Path

from esb.durations import DURATION_PATTERN
from esb.plugins import AdapterSpec, register

DEFAULT_TIMEOUT = 30.0
"""Seconds a SOAP call may take before it counts as a retryable failure."""

DEFAULT_MAX_BODY_BYTES = 1_048_576
"""Largest SOAP request the inbound endpoint accepts (1 MiB); larger ones get a SOAP fault."""


def _duration(description: str, default: float | str | None, **extra) -> dict:
    """A duration option: seconds as a number, or a string such as 500ms, 10s, 2m."""
    types = ["number", "string"] if default is not None else ["number", "string", "null"]
    return {"type": types, "minimum": 0, "pattern": DURATION_PATTERN,
            "description": description, "default": default, **extra}


SYSTEM_SCHEMA = {
    "type": "object",
    "description": "A SOAP service described by a WSDL file. Secrets come from ${ENV} variables.",
    "additionalProperties": False,
    "required": ["wsdl"],
    "properties": {
        "wsdl": {"type": "string", "x-esb-path": True,
                 "description": "The service's WSDL file, relative to the routes file (a local copy: "
                                "the bus never fetches a WSDL over the network at start-up)."},
        "endpoint_url": {"type": ["string", "null"], "pattern": "^https?://", "default": None,
                         "x-esb-expected": "an http:// or https:// URL",
                         "description": "Service address to call instead of the one in the WSDL "
                                        "(test and production systems often share one WSDL)."},
        "username": {"type": ["string", "null"], "default": None,
                     "description": "User name (HTTP basic auth, or WS-Security when wsse is true)."},
        "password": {"type": ["string", "null"], "default": None,
                     "description": "Password for username."},
        "wsse": {"type": "boolean", "default": False,
                 "description": "Send username/password as a WS-Security UsernameToken instead of HTTP "
                                "basic authentication."},
        "timeout": _duration("Seconds a call may take, or a duration such as 30s; a timeout is a "
                             "retryable failure.", DEFAULT_TIMEOUT),
        "verify_tls": {"type": "boolean", "default": True,
                       "description": "Check the server's TLS certificate. Turn off only for a test system."},
    },
}

ENDPOINT_SCHEMA = {
    "type": "object",
    "description": "from: poll an operation (poll:) or accept calls at POST /soap/<route> "
                   "(inbound: true); to: call an operation.",
    "x-esb-source": True,
    "x-esb-sink": True,
    "x-esb-sink-required": ["system"],
    "additionalProperties": False,
    "required": ["operation"],
    "properties": {
        "system": {"type": ["string", "null"], "default": None,
                   "description": "The system (under systems:) whose WSDL and credentials are used; needed "
                                  "to poll or to call."},
        "operation": {"type": "string",
                      "description": "The WSDL operation to poll, to call, or (inbound) to accept."},
        "params": {"type": "object", "default": {},
                   "description": "Fixed request parameters of the operation (poll or call), merged "
                                  "under the mapped document."},
        # source options
        "poll": _duration("Seconds between two calls of the operation, or a duration such as 60s; set it "
                          "to poll.", None, **{"x-esb-role": "source"}),
        "watermark": {"type": ["string", "null"], "default": None, "x-esb-role": "source",
                      "description": "JMESPath over each polled record giving a value that only grows (a "
                                     "change time, a document number); the highest one seen is kept in the "
                                     "data dir so a restart does not fetch everything again."},
        "watermark_param": {"type": ["string", "null"], "default": None, "x-esb-role": "source",
                            "description": "Request parameter that receives the stored watermark on the "
                                           "next poll."},
        "inbound": {"type": "boolean", "default": False, "x-esb-role": "source",
                    "description": "Accept SOAP calls of the operation at POST /soap/<route> (answered "
                                   "after the message is stored, or with a SOAP fault)."},
        "wsdl": {"type": ["string", "null"], "default": None, "x-esb-path": True, "x-esb-role": "source",
                 "description": "WSDL served and enforced by the inbound endpoint, relative to the routes "
                                "file; default: the system's wsdl."},
        "max_body_bytes": {"type": "integer", "minimum": 1, "default": DEFAULT_MAX_BODY_BYTES,
                           "x-esb-role": "source",
                           "description": "Largest inbound request accepted, in bytes."},
    },
}


def check_endpoint(endpoint, system: dict | None, base_dir) -> list[str]:
    """A source polls or is inbound; the WSDL file it uses exists."""
    options = endpoint.options
    problems = []
    is_source = "inbound" in options  # only a source's options carry the source-only keys
    if is_source and not options.get("inbound") and options.get("poll") is None:
        problems.append("a soap source needs poll: (call the operation every so often) "
                        "or inbound: true (accept calls at POST /soap/<route>)")
    if is_source and options.get("poll") is not None and not options.get("system"):
        problems.append("a polling soap source needs system: (whose WSDL and credentials to use)")
    wsdl = options.get("wsdl") or (system or {}).get("wsdl")
    if is_source and options.get("inbound") and not wsdl:
        problems.append("an inbound soap source needs wsdl: (or a system with one)")
    if wsdl and not Path(wsdl).is_file():
        problems.append(f"WSDL file not found: {wsdl}")
    return problems


register(AdapterSpec(
    name="soap",
    summary="SOAP 1.1/1.2 with a local WSDL: poll or accept an operation, call an operation",
    endpoint_schema=ENDPOINT_SCHEMA,
    system_schema=SYSTEM_SCHEMA,
    source_factory=None,
    sink_factory=None,
    check=check_endpoint,
))

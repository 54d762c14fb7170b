"""SOAP: poll an operation (a source), serve `POST /soap/<route>` (an inbound source), call an
operation (a sink). Keywords `x-esb-*`: see adapters/rest.py.

The adapter's options and its registration are here; the parts, one concern each:

- `wsdl`: loading WSDL files (zeep's forbid settings on), operations by name, `esb check`'s checks;
- `mapping_fit`: `esb check` refuses a destination whose mapping cannot write the operation's input;
- `client`: calling an operation (auth, sessions), fault classification, and the sink;
- `poll`: the poll source and its watermark file, with `paging` (following the pages of an answer);
- `inbound`: `POST /soap/<route>` (SOAP 1.1/1.2) and `GET ?wsdl`, with `envelopes` (the faults and
  responses it answers with) and `schema` (the WSDL's XML schema that checks a request).

Outbound (`to: {soap: {system, operation, params}}`): see `adapters.soap.client`.
Poll (`from: {soap: {system, operation, poll, params, watermark, watermark_param}}`, paged with
`page_param` or `next_page` + `page_token_param`, `records`, `max_pages`): see `adapters.soap.poll`
and `adapters.soap.paging`. Inbound (`from: {soap: {operation, inbound: true, wsdl}}`): see
`SoapInboundSource`.
"""

from __future__ import annotations

from adapters.soap.client import (
    OperationCaller,
    SoapSink,
    fault_code_name,
    fault_outcome,
    request_arguments,
    target_id,
)
from adapters.soap.envelopes import SoapFault, fault_response, response_element
from adapters.soap.inbound import SoapInboundSource, parse_envelope
from adapters.soap.mapping_fit import check_mapping
from adapters.soap.paging import PAGING_OPTIONS
from adapters.soap.poll import SoapPollSource, WatermarkFile, answer_records
from adapters.soap.schema import request_schema, schema_problems
from adapters.soap.wsdl import (
    OperationInfo,
    WsdlError,
    check_endpoint,
    find_operation,
    load_wsdl,
    wsdl_operations,
)
from esb.durations import duration_option
from esb.plugins import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_TIMEOUT,
    AdapterSpec,
    Source,
    basic_auth_options,
    body_limit_option,
    register,
    timeout_option,
    tls_options,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES", "DEFAULT_TIMEOUT", "ENDPOINT_SCHEMA", "SYSTEM_SCHEMA", "OperationCaller",
    "OperationInfo", "SoapFault", "SoapInboundSource", "SoapPollSource", "SoapSink", "WatermarkFile",
    "WsdlError", "answer_records", "check_endpoint", "fault_code_name", "fault_outcome", "fault_response",
    "find_operation", "load_wsdl", "parse_envelope", "request_arguments", "request_schema",
    "response_element", "schema_problems", "target_id", "wsdl_operations",
]


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
        **basic_auth_options(also=", or for a WS-Security UsernameToken when wsse is true"),
        "wsse": {"type": "boolean", "default": False,
                 "description": "Send username/password as a WS-Security UsernameToken instead of HTTP "
                                "basic authentication."},
        "timeout": timeout_option(),
        **tls_options(ca_file=False),
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
        "poll": duration_option(
            "Seconds between two calls of the operation, or a duration such as 60s; set it "
            "to poll.", None, **{"x-esb-role": "source"}),
        "watermark": {"type": ["string", "null"], "default": None, "x-esb-role": "source",
                      "description": "JMESPath over each polled record giving a value that only grows (a "
                                     "change time, a document number); the highest one seen is kept in the "
                                     "data dir so a restart does not fetch everything again."},
        "watermark_param": {"type": ["string", "null"], "default": None, "x-esb-role": "source",
                            "description": "Request parameter that receives the stored watermark on the "
                                           "next poll."},
        **PAGING_OPTIONS,
        "inbound": {"type": "boolean", "default": False, "x-esb-role": "source",
                    "description": "Accept SOAP calls of the operation at POST /soap/<route> (answered "
                                   "after the message is stored, or with a SOAP fault)."},
        "wsdl": {"type": ["string", "null"], "default": None, "x-esb-path": True, "x-esb-role": "source",
                 "description": "WSDL served and enforced by the inbound endpoint, relative to the routes "
                                "file; default: the system's wsdl."},
        "max_body_bytes": body_limit_option(**{"x-esb-role": "source"}),
    },
}


def _source(endpoint, system: dict | None, route_name: str) -> Source:
    if endpoint.options.get("inbound"):
        return SoapInboundSource(endpoint, system, route_name)
    return SoapPollSource(endpoint, system or {}, route_name)


register(AdapterSpec(
    name="soap",
    summary="SOAP 1.1/1.2 with a local WSDL: poll or accept an operation, call an operation",
    endpoint_schema=ENDPOINT_SCHEMA,
    system_schema=SYSTEM_SCHEMA,
    source_factory=_source,
    sink_factory=lambda endpoint, system: SoapSink(endpoint, system or {}),
    check=check_endpoint,
    check_mapping=check_mapping,
))

"""SOAP: poll an operation (a source), serve `POST /soap/<route>` (an inbound source), call an
operation (a sink). Keywords `x-esb-*`: see adapters/rest.py.

WSDLs are local files, parsed once per file version (path, size, modification time) and shared by
every route that uses them; zeep runs strict, with DTDs, entity declarations and external
references forbidden, so neither a WSDL nor an answer can expand entities or fetch from the network.

Outbound (`to: {soap: {system, operation, params}}`): the rendered document (JSON, or XML whose
root element is dropped) becomes the operation's keyword arguments, merged over `params`. The
message id travels as the HTTP header `Idempotency-Key` (and the correlation id as
`X-Correlation-Id`): a header leaves the WSDL's request type untouched, so any service can log or
de-duplicate by it. Outcomes: a SOAP 1.1 `Client` / SOAP 1.2 `Sender` fault (also
`VersionMismatch`, `MustUnderstand`), a request that does not match the WSDL, or an HTTP 4xx
without a fault is permanent; a `Server` / `Receiver` fault, an unknown fault code, a timeout, a
connection error and HTTP 408/425/429/5xx are retryable.

Poll (`from: {soap: {system, operation, poll, params, watermark, watermark_param}}`): every
`poll` seconds the operation is called with `params` (plus `watermark_param` = the stored
watermark); the answer is turned into plain data and unwrapped down to its records (a wrapper
with one child is unwrapped, a list gives one record per item, anything else is one record); each
record is submitted as JSON with an idempotency key made of its content, so a record fetched twice
is stored once. The highest `watermark` value is kept in `<data_dir>/watermarks/soap-<route>.json`,
written atomically and only after every record of the poll was stored or dead-lettered.

Inbound (`from: {soap: {operation, inbound: true, wsdl}}`): see `SoapInboundSource`.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import re
import tempfile
import threading
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import jmespath
import requests
import zeep
import zeep.exceptions
import zeep.helpers
from flask import Response, request
from lxml import etree
from zeep.wsse.username import UsernameToken

from esb import jsonfmt
from esb.codecs.xml import parse as parse_xml_document
from esb.codecs.xml import safe_parser, safe_root
from esb.credentials import presented_key
from esb.durations import duration_option
from esb.errors import DecodeError, FieldProblem, InputError, Permanent, Retryable, Unavailable
from esb.plugins import AdapterSpec, RawMessage, Sink, Source, SourceContext, register
from esb.problems import unknown

log = logging.getLogger("esb.adapters.soap")

DEFAULT_TIMEOUT = 30.0
"""Seconds a SOAP call may take before it counts as a retryable failure."""

DEFAULT_MAX_BODY_BYTES = 1_048_576
"""Largest SOAP request the inbound endpoint accepts (1 MiB); larger ones get a SOAP fault."""


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
        "timeout": duration_option(
            "Seconds a call may take, or a duration such as 30s; a timeout is a "
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


ZEEP_FORBID = {"forbid_dtd": True, "forbid_entities": True, "forbid_external": True}
"""zeep's XML safety switches: no DOCTYPE, no entity declarations, no fetch of a remote import."""

WSDL_LOAD_TIMEOUT = 10.0
"""Seconds zeep may spend loading a WSDL (local files only: remote imports are forbidden)."""

SOAP11_ENVELOPE = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENVELOPE = "http://www.w3.org/2003/05/soap-envelope"
WSDL_NAMESPACE = "http://schemas.xmlsoap.org/wsdl/"
XSD_NAMESPACE = "http://www.w3.org/2001/XMLSchema"
WSSE_NAMESPACE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
ESB_NAMESPACE = "urn:esb:soap"
"""Namespace of the bus's own SOAP header (`esb:Accepted`) and fault details (`esb:problems`)."""

PERMANENT_FAULT_CODES = frozenset({"client", "sender", "versionmismatch", "mustunderstand",
                                   "dataencodingunknown"})
"""Fault codes (local names, SOAP 1.1 and 1.2) that retrying the same request cannot fix."""

RETRYABLE_STATUS = frozenset({408, 425, 429})


def _zeep_settings() -> zeep.Settings:
    """Strict parsing with the forbid switches on; one per client (its overrides are per thread)."""
    return zeep.Settings(strict=True, xml_huge_tree=False, **ZEEP_FORBID)


# --- WSDL files: loaded once per file version ---------------------------------------------------

class WsdlError(Exception):
    """A WSDL file that cannot be used; the message says why, in a sentence."""


_documents: dict[tuple[str, int, int], Any] = {}
_documents_lock = threading.Lock()


def load_wsdl(path: str | os.PathLike) -> Any:
    """The parsed WSDL (a `zeep.wsdl.Document`) of a local file, cached per (path, size, mtime)."""
    resolved = Path(path).resolve()
    try:
        stat = resolved.stat()
    except OSError as error:
        raise WsdlError(f"WSDL file {path} cannot be read: {error.strerror}") from None
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    with _documents_lock:
        document = _documents.get(key)
        if document is None:
            document = _parse_wsdl(resolved, path)
            for stale in [k for k in _documents if k[0] == key[0]]:
                del _documents[stale]
            _documents[key] = document
    return document


def _parse_wsdl(resolved: Path, shown: str | os.PathLike) -> Any:
    transport = zeep.Transport(timeout=WSDL_LOAD_TIMEOUT)
    try:
        return zeep.wsdl.Document(str(resolved), transport, settings=_zeep_settings())
    except zeep.exceptions.DTDForbidden:
        reason = "it has a DOCTYPE (DTDs and entities are refused)"
    except zeep.exceptions.EntitiesForbidden as error:
        reason = f"it declares the entity {error.name!r} (entities are refused)"
    except zeep.exceptions.ExternalReferenceForbidden as error:
        reason = f"it imports {error.url}, and nothing is fetched over the network: use a local copy"
    except (zeep.exceptions.Error, etree.Error, OSError, ValueError, KeyError) as error:
        reason = f"{type(error).__name__}: {getattr(error, 'message', None) or error}"
    finally:
        transport.session.close()
    raise WsdlError(f"WSDL file {shown} cannot be used: {reason}")


class OperationInfo:
    """One operation of a WSDL, with the binding that offers it and that binding's address."""

    def __init__(self, binding: Any, operation: Any, address: str | None):
        self.binding = binding
        self.operation = operation
        self.address = address
        self.name = operation.name
        self.soap_version = "1.2" if isinstance(binding, zeep.wsdl.bindings.Soap12Binding) else "1.1"

    @property
    def soap_action(self) -> str:
        return getattr(self.operation, "soapaction", None) or ""

    def input_fields(self) -> list[str] | None:
        """Names of the request's parameters (document/literal wrapped), None when unknown."""
        return _child_names(getattr(self.operation.input, "body", None))

    def input_element(self) -> Any:
        return getattr(self.operation.input, "body", None)

    def output_element(self) -> Any:
        output = self.operation.output
        return getattr(output, "body", None) if output is not None else None


def _child_names(element: Any) -> list[str] | None:
    try:
        return [name for name, _ in element.type.elements]
    except AttributeError:
        return None


def wsdl_operations(document: Any) -> dict[str, OperationInfo]:
    """Every operation of the WSDL by name; bindings that a service port offers come first, so an
    operation offered by two bindings is called through the port the WSDL names first."""
    found: dict[str, OperationInfo] = {}
    addresses: dict[str, str | None] = {}
    ordered = []
    for service in document.services.values():
        for port in service.ports.values():
            key = str(port.binding.name)
            if key not in addresses:
                addresses[key] = port.binding_options.get("address")
                ordered.append(port.binding)
    ordered.extend(binding for key, binding in document.bindings.items() if key not in addresses)
    for binding in ordered:
        for name, operation in getattr(binding, "_operations", {}).items():
            found.setdefault(name, OperationInfo(binding, operation, addresses.get(str(binding.name))))
    return found


def find_operation(wsdl: str | os.PathLike, name: str) -> OperationInfo:
    """The operation `name` of the WSDL file; WsdlError (with "did you mean") when it has none."""
    operations = wsdl_operations(load_wsdl(wsdl))
    if name not in operations:
        raise WsdlError(f"{unknown('operation', name, operations)} (in {wsdl})")
    return operations[name]


# --- esb check -----------------------------------------------------------------------------------

def check_endpoint(endpoint, system: dict | None, base_dir) -> list[str]:
    """A source polls or is inbound; the WSDL it uses loads safely and offers the operation; the
    fixed parameters and the watermark parameter are parameters of that operation."""
    options = endpoint.options
    problems = []
    is_source = "inbound" in options  # only a source's options carry the source-only keys
    if is_source and not options.get("inbound") and options.get("poll") is None:
        problems.append("a soap source needs poll: (call the operation every so often) "
                        "or inbound: true (accept calls at POST /soap/<route>)")
    if is_source and options.get("inbound") and options.get("poll") is not None:
        problems.append("a soap source either polls (poll:) or accepts calls (inbound: true), not both: "
                        "make two routes")
    if is_source and options.get("poll") is not None and not options.get("system"):
        problems.append("a polling soap source needs system: (whose WSDL and credentials to use)")
    if is_source:
        problems.extend(_watermark_problems(options))
    wsdl = options.get("wsdl") or (system or {}).get("wsdl")
    if is_source and options.get("inbound") and not wsdl:
        problems.append("an inbound soap source needs wsdl: (or a system with one)")
    if wsdl and not Path(wsdl).is_file():
        problems.append(f"WSDL file not found: {wsdl}")
    elif wsdl and options.get("operation"):
        problems.extend(_operation_problems(options, wsdl, system))
    return problems


def _watermark_problems(options: dict) -> list[str]:
    problems = []
    if options.get("watermark_param") and not options.get("watermark"):
        problems.append("watermark_param needs watermark: (the JMESPath that gives each record's value)")
    if options.get("watermark"):
        try:
            jmespath.compile(options["watermark"])
        except jmespath.exceptions.JMESPathError as error:
            problems.append(f"watermark is not a valid JMESPath expression: {error}")
    return problems


def _operation_problems(options: dict, wsdl: str, system: dict | None) -> list[str]:
    try:
        found = find_operation(wsdl, options["operation"])
    except WsdlError as error:
        return [str(error)]
    problems = []
    fields = found.input_fields()
    if fields is not None:
        for name in options.get("params") or {}:
            if name not in fields:
                problems.append(f"params: {unknown(f'parameter of {found.name}', name, fields)}")
        parameter = options.get("watermark_param")
        if parameter and parameter not in fields:
            problems.append(f"watermark_param: {unknown(f'parameter of {found.name}', parameter, fields)}")
    calls = not options.get("inbound")
    if calls and system is not None and not system.get("endpoint_url") and not found.address:
        problems.append(f"the WSDL gives no address for {found.name}: set endpoint_url in the system")
    return problems


# --- calling an operation (the sink, and the poll) -----------------------------------------------

class OperationCaller:
    """Calls one operation of a system's WSDL with zeep; safe to use from several threads (each gets
    its own client and HTTP session). Raises `Retryable` or `Permanent`, see the module docstring."""

    def __init__(self, system: dict, operation: str):
        """`system`: the system's soap settings (wsdl, endpoint_url, username, password, wsse,
        timeout in seconds, verify_tls); `operation`: the operation's name in the WSDL."""
        self.system = system
        self.timeout = float(system.get("timeout") or DEFAULT_TIMEOUT)
        self.document = load_wsdl(system["wsdl"])
        self.info = find_operation(system["wsdl"], operation)
        self.address = system.get("endpoint_url") or self.info.address
        if not self.address:
            raise WsdlError(f"the WSDL {system['wsdl']} gives no address for {operation}: set endpoint_url")
        self.where = f"{operation} at {self.address}"
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def _service(self) -> tuple[Any, Any]:
        made = getattr(self._local, "made", None)
        if made is None:
            session = requests.Session()
            session.verify = self.system.get("verify_tls", True)
            username, password = self.system.get("username"), self.system.get("password") or ""
            wsse = None
            if username and self.system.get("wsse"):
                wsse = UsernameToken(username, password)
            elif username:
                session.auth = (username, password)
            session.hooks["response"].append(self._remember_status)
            transport = zeep.Transport(session=session, timeout=WSDL_LOAD_TIMEOUT,
                                       operation_timeout=self.timeout)
            client = zeep.Client(self.document, transport=transport, wsse=wsse, settings=_zeep_settings())
            service = client.create_service(str(self.info.binding.name), self.address)
            made = self._local.made = (client, service)
            with self._lock:
                self._sessions.append(session)
        return made

    def _remember_status(self, response: requests.Response, *args, **kwargs) -> None:
        self._local.status = response.status_code

    def call(self, arguments: dict, headers: dict[str, str] | None = None) -> Any:
        """The operation's answer (zeep objects); `headers` are extra HTTP headers of this call.

        The outcome is raised outside the `except` block and `from None`: its message says
        everything, and zeep's traceback would keep the failed call's HTTP connection open for as
        long as the error is kept (in a retry header, a test's `pytest.raises`)."""
        client, service = self._service()
        self._local.status = None
        try:
            with client.settings(extra_http_headers=headers or {}):
                return getattr(service, self.info.name)(**arguments)
        except Exception as error:  # noqa: BLE001 - classified below; anything unexpected is re-raised
            outcome = self._outcome(error)
            if outcome is None:
                raise
        raise outcome from None

    def _outcome(self, error: Exception) -> Retryable | Permanent | None:
        """`error` of a call as Retryable or Permanent; None for an error that is a bug."""
        where = self.where
        if isinstance(error, zeep.exceptions.Fault):
            if error.code is None and self._local.status not in (None, 200):
                # zeep makes a fault of any XML error page (HTML is XML enough): classify it by status
                return self._http_error(self._local.status, error.detail)
            return fault_outcome(error, where)
        if isinstance(error, zeep.exceptions.ValidationError | TypeError):
            return Permanent(f"{where}: the request does not match the WSDL: {error}")
        if isinstance(error, zeep.exceptions.TransportError):
            return self._http_error(error.status_code, error.message)
        if isinstance(error, zeep.exceptions.DTDForbidden | zeep.exceptions.EntitiesForbidden
                      | zeep.exceptions.ExternalReferenceForbidden):
            return Permanent(f"{where}: the answer has a DTD or entities, which are refused")
        if isinstance(error, zeep.exceptions.XMLSyntaxError):
            return Retryable(f"{where}: the answer is not a SOAP envelope: {_short(error.message)}")
        if isinstance(error, zeep.exceptions.XMLParseError | zeep.exceptions.UnexpectedElementError):
            return Permanent(f"{where}: the answer does not match the WSDL: {error}")
        if isinstance(error, requests.Timeout):
            return Retryable(f"{where}: no answer within {self.timeout:g} s")
        if isinstance(error, requests.RequestException):
            return Retryable(f"{where}: {type(error).__name__}: {error}")
        return None

    def _http_error(self, status: int, content: Any) -> Retryable | Permanent:
        text = f"{self.where} answered HTTP {status} without a SOAP fault: {_detail_text(content)}"
        if status in RETRYABLE_STATUS or status >= 500 or status < 400:
            return Retryable(text)
        return Permanent(text)

    def close(self) -> None:
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()


def fault_outcome(fault: zeep.exceptions.Fault, where: str = "the call") -> Permanent | Retryable:
    """A SOAP fault as an outcome: `Client`/`Sender` (and the other codes that a retry cannot fix)
    are permanent; `Server`/`Receiver` and unknown or missing codes are retryable."""
    code = fault_code_name(fault.code)
    text = f"{where}: SOAP fault {code or '(no code)'}: {fault.message or '(no reason)'}"
    detail = _detail_text(fault.detail)
    if detail:
        text += f" [{detail}]"
    return Permanent(text) if code.lower() in PERMANENT_FAULT_CODES else Retryable(text)


def fault_code_name(code: Any) -> str:
    """The local name of a fault code: `soap:Client.Authentication` -> `Client`,
    `{http://www.w3.org/2003/05/soap-envelope}Sender` -> `Sender`."""
    text = str(code or "").strip()
    text = text.rpartition("}")[2].rpartition(":")[2]
    return text.split(".", 1)[0]


def _detail_text(detail: Any) -> str:
    if detail is None:
        return ""
    if isinstance(detail, etree._Element):
        detail = " ".join(detail.itertext())
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return _short(" ".join(str(detail).split()), 300)


def _short(text: Any, limit: int = 300) -> str:
    text = str(text or "")
    return text if len(text) <= limit else text[:limit] + "..."


# --- the sink ------------------------------------------------------------------------------------

class SoapSink(Sink):
    """Calls the operation with the rendered document (JSON object, or XML: its root's content) as
    keyword arguments over `params`; the message id goes as the `Idempotency-Key` HTTP header.
    Returns the target's id: the answer when it is one value, else its first field named like an
    id (`...Id`, `...ID`, `..._id`, `...Number`)."""

    def __init__(self, endpoint, system: dict):
        self.caller = OperationCaller(system, endpoint.options["operation"])
        self.params = dict(endpoint.options.get("params") or {})

    def deliver(self, envelope, body: bytes, content_type: str) -> str | None:
        document = request_arguments(body, content_type)
        headers = {"Idempotency-Key": str(envelope.id)}
        if getattr(envelope, "correlation_id", None):
            headers["X-Correlation-Id"] = str(envelope.correlation_id)
        answer = self.caller.call({**self.params, **document}, headers)
        return target_id(zeep.helpers.serialize_object(answer, dict))

    def close(self) -> None:
        self.caller.close()


def request_arguments(body: bytes, content_type: str) -> dict:
    """The operation's keyword arguments from a rendered document; Permanent when it is not an
    object (a JSON object, or an XML document whose root element holds the parameters)."""
    if "xml" in (content_type or "").lower():
        try:
            document = parse_xml_document(body)
        except DecodeError as error:
            raise Permanent(f"the rendered request is not usable XML: {error}") from error
        document = next(iter(document.values()))
    else:
        try:
            document = jsonfmt.loads(body)
        except ValueError as error:
            raise Permanent(f"the rendered request is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise Permanent(f"the rendered request must be an object of the operation's parameters, "
                        f"not {type(document).__name__}")
    return document


_ID_NAME = re.compile(r".*(Id|ID|_id|Number|_number)$|id$")


def target_id(answer: Any) -> str | None:
    if answer is None or isinstance(answer, bool):
        return None
    if isinstance(answer, str | int | Decimal):
        return str(answer)
    if isinstance(answer, dict):
        values = [value for value in answer.values() if value is not None]
        if len(values) == 1 and not isinstance(values[0], dict | list):
            return target_id(values[0])
        for name, value in answer.items():
            if _ID_NAME.match(name) and isinstance(value, str | int | Decimal):
                return str(value)
    return None


# --- the poll ------------------------------------------------------------------------------------

class SoapPollSource(Source):
    """Calls the operation every `poll` seconds and submits each returned record as JSON."""

    def __init__(self, endpoint, system: dict, route_name: str):
        options = endpoint.options
        self.route = route_name
        self.operation = options["operation"]
        self.params = dict(options.get("params") or {})
        self.poll_interval = float(options["poll"])
        self.watermark_param = options.get("watermark_param")
        expression = options.get("watermark")
        self._watermark = jmespath.compile(expression) if expression else None
        self.caller = OperationCaller(system, self.operation)
        self._context: SourceContext | None = None
        self.watermarks: WatermarkFile | None = None
        self._poll_lock = threading.Lock()

    def start(self, context: SourceContext) -> None:
        self._context = context
        self.watermarks = WatermarkFile(Path(context.data_dir) / "watermarks" / f"soap-{self.route}.json",
                                        self.operation)

    def poll(self) -> None:
        try:
            self.poll_once()
        except Exception:  # the scheduler keeps polling; this poll's records are fetched again
            log.exception("soap poll of %s failed", self.operation, extra={"route": self.route})

    def poll_once(self) -> dict[str, int]:
        """One call: submit every new record, then advance the watermark. Returns counts (for logs
        and tests): submitted, duplicate, dead_lettered, skipped (older than the watermark)."""
        with self._poll_lock:
            return self._poll()

    def _poll(self) -> dict[str, int]:
        counts = {"submitted": 0, "duplicate": 0, "dead_lettered": 0, "skipped": 0}
        stored = self.watermarks.load()
        arguments = dict(self.params)
        if self.watermark_param and stored is not None:
            arguments[self.watermark_param] = stored
        try:
            answer = self.caller.call(arguments)
        except (Retryable, Permanent) as error:
            log.warning("soap poll: %s", error, extra={"route": self.route})
            counts["failed"] = 1
            return counts
        records = [_plain(record) for record in answer_records(zeep.helpers.serialize_object(answer, dict))]
        marked = [(self._mark(record), record) for record in records]
        if stored is not None:
            fresh = [(mark, record) for mark, record in marked
                     if mark is None or _order(mark) >= _order(stored)]
            counts["skipped"] = len(marked) - len(fresh)
            marked = fresh
        marked.sort(key=lambda pair: (pair[0] is not None, _order(pair[0])))
        highest = stored
        for mark, record in marked:
            outcome = self._submit(record, mark)
            if outcome is None:
                return counts  # the bus cannot store now: keep the old watermark, fetch again later
            counts[outcome] += 1
            if mark is not None and (highest is None or _order(mark) > _order(highest)):
                highest = mark
        if highest is not None and highest != stored:
            self.watermarks.save(highest)
        return counts

    def _mark(self, record: Any) -> Any:
        if self._watermark is None:
            return None
        value = self._watermark.search(record)
        if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
            return None
        return value

    def _submit(self, record: Any, mark: Any) -> str | None:
        context = self._context
        body = jsonfmt.dump_bytes(record)
        key = f"soap:{self.route}:{self.operation}:{hashlib.sha256(body).hexdigest()}"
        raw = RawMessage(body, "application/json", {"operation": self.operation, "watermark": mark})
        try:
            accepted = context.submit(raw, idempotency_key=key)
        except InputError as error:
            if context.dead_letter is None:
                log.error("soap poll: a record was refused and there is no dead-letter queue: %s", error,
                          extra={"route": self.route})
                return None
            try:
                context.dead_letter(raw, error)
            except Unavailable as failure:
                log.warning("soap poll: could not dead-letter a refused record: %s", failure,
                            extra={"route": self.route})
                return None
            return "dead_lettered"
        except Unavailable as error:
            log.warning("soap poll stopped, the bus cannot store now: %s", error, extra={"route": self.route})
            return None
        return "duplicate" if accepted.duplicate else "submitted"

    def stop(self) -> None:
        self.caller.close()


def answer_records(answer: Any) -> list[Any]:
    """The records of an operation's answer (plain data): wrappers with one child are unwrapped; a
    list gives one record per item; anything else is one record; nothing gives none."""
    while isinstance(answer, dict) and len(answer) == 1:
        answer = next(iter(answer.values()))
    if answer is None:
        return []
    if isinstance(answer, list):
        return [item for item in answer if item is not None]
    return [answer]


def _plain(value: Any) -> Any:
    """zeep's answer as JSON-ready data: dates and times as ISO 8601 text, bytes as hex."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def _order(value: Any) -> tuple:
    """A key that orders watermark values: numbers by value, ISO 8601 times with an offset as
    instants, anything else as text."""
    if value is None:
        return (-1,)
    if isinstance(value, int | float | Decimal):
        return (0, Decimal(str(value)))
    text = str(value)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is not None and moment.tzinfo is not None:
        return (1, moment.timestamp(), text)
    return (2, text)


class WatermarkFile:
    """The highest watermark seen by a poll, in a JSON file replaced atomically (written to a temporary
    file in the same directory, flushed to disk, then renamed over the old one)."""

    def __init__(self, path: Path, operation: str):
        self.path = path
        self.operation = operation

    def load(self) -> Any:
        try:
            document = jsonfmt.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as error:  # fetching everything again is safe: records are de-duplicated
            log.warning("watermark file %s is unreadable (%s); polling from the start", self.path, error)
            return None
        if not isinstance(document, dict) or document.get("operation") != self.operation:
            return None
        return document.get("watermark")

    def save(self, value: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = jsonfmt.dump_bytes({"operation": self.operation, "watermark": value,
                                   "saved_at": datetime.now().astimezone().isoformat()})
        handle, temporary = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


# --- the inbound endpoint: POST /soap/<route> ------------------------------------------------------

class SoapFault(Exception):
    """A request the endpoint refuses: `sender` says whose fault it is (Client/Sender, else
    Server/Receiver); `code` overrides the code (VersionMismatch, MustUnderstand)."""

    def __init__(self, reason: str, *, sender: bool = True, problems: list[FieldProblem] | None = None,
                 status: int | None = None, code: str | None = None, headers: dict | None = None):
        super().__init__(reason)
        self.reason = reason
        self.sender = sender
        self.problems = list(problems or [])
        self.status = status
        self.code = code
        self.headers = headers or {}


class SoapInboundSource(Source):
    """A push source: `POST /soap/<route>` takes a SOAP 1.1 (`text/xml` with a `SOAPAction` header) or
    SOAP 1.2 (`application/soap+xml`, optional `action` parameter) call of the configured operation.

    The request is parsed with DTDs, entities and network access off (a DOCTYPE is refused), its body
    element must be the operation's request element and valid against the WSDL's schema; then that
    element (as XML) is submitted: a route's `input: {format: xml}` mapping reads it. The answer comes
    after the broker confirmed: the operation's response element with the message id in its first
    id-like field (`MessageId`, `...Id`), plus an `esb:Accepted` header with every id and whether the
    call repeated an earlier one (same `Idempotency-Key` HTTP header).

    Faults use the request's SOAP version: Client/Sender for bad input, naming each problem in
    `detail` (HTTP 500 in SOAP 1.1, 400 in SOAP 1.2), Server/Receiver when the bus cannot store the
    message now (HTTP 500, `Retry-After`; the caller should retry), 401/403 for credentials, 413 for a
    body over `max_body_bytes`, 415 for a content type that is not SOAP.

    Credentials (role `sender=<route>`): an API key as `X-API-Key` or `Authorization: Bearer`, the
    password of HTTP basic authentication, or the password of a WS-Security UsernameToken
    (PasswordText; use TLS). `GET /soap/<route>?wsdl` serves the WSDL without credentials, with the
    service address set to this endpoint.
    """

    def __init__(self, endpoint, system: dict | None, route_name: str):
        options = endpoint.options
        self.route = route_name
        self.sender = options.get("system")
        self.max_body_bytes = int(options.get("max_body_bytes") or DEFAULT_MAX_BODY_BYTES)
        self.wsdl = options.get("wsdl") or (system or {}).get("wsdl")
        if not self.wsdl:
            raise WsdlError(f"route {route_name}: an inbound soap source needs a WSDL")
        self.info = find_operation(self.wsdl, options["operation"])
        self.request_element = self.info.input_element()
        self.schema = request_schema(self.wsdl)
        self._credentials = None
        self._submit = None

    def start(self, context: SourceContext) -> None:
        self._submit = context.submit
        self._credentials = context.credentials
        context.add_url_rule(f"/soap/{self.route}", endpoint=f"soap_{self.route}", view_func=self._receive,
                             methods=["GET", "POST"])

    # the view
    def _receive(self):
        if request.method == "GET":
            return self._serve_wsdl()
        version = "1.2" if request.mimetype == "application/soap+xml" else "1.1"
        try:
            version, envelope, element = self._read_envelope()
            self._authorize(envelope, version)
            self._check_call(element, version)
            document = etree.tostring(element, encoding="utf-8", xml_declaration=True)
            raw = RawMessage(document, "application/xml",
                             {"sender": self.sender, "remote": request.remote_addr,
                              "operation": self.info.name, "soap_version": version})
            try:
                accepted = self._submit(raw, idempotency_key=request.headers.get("Idempotency-Key") or None)
            except InputError as error:
                raise SoapFault(error.message, problems=error.problems) from None
            except Unavailable as error:
                raise SoapFault(f"the bus cannot store the message now, try again later: {error}",
                                sender=False, headers={"Retry-After": "5"}) from None
        except SoapFault as fault:
            return fault_response(fault, version)
        return self._accepted_response(accepted, version)

    def _read_envelope(self) -> tuple[str, Any, Any]:
        limit = self.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise SoapFault(f"the request is larger than the limit of {limit} bytes", status=413)
        media_type = request.mimetype
        if media_type == "text/xml":
            version = "1.1"
            if "SOAPAction" not in request.headers:
                raise SoapFault("a SOAP 1.1 request needs a SOAPAction HTTP header")
        elif media_type == "application/soap+xml":
            version = "1.2"
        else:
            raise SoapFault(f"content type {request.content_type or '(none)'!r} is not SOAP: send text/xml "
                            "(SOAP 1.1) or application/soap+xml (SOAP 1.2)", status=415)
        body = request.stream.read(limit + 1)
        if len(body) > limit:
            raise SoapFault(f"the request is larger than the limit of {limit} bytes", status=413)
        envelope = parse_envelope(body)
        namespace = etree.QName(envelope).namespace
        if namespace != (SOAP11_ENVELOPE if version == "1.1" else SOAP12_ENVELOPE):
            other = "1.2" if namespace == SOAP12_ENVELOPE else "1.1" if namespace == SOAP11_ENVELOPE else None
            reason = (f"a SOAP {other} envelope was sent as {media_type} (SOAP {version})" if other else
                      f"the envelope's namespace {namespace!r} is not SOAP {version}'s")
            raise SoapFault(reason, code="VersionMismatch")
        _check_must_understand(envelope, namespace)
        body_element = envelope.find(f"{{{namespace}}}Body")
        element = None if body_element is None else next(
            (child for child in body_element if isinstance(child.tag, str)), None)
        if element is None:
            raise SoapFault("the SOAP Body is empty: it must hold the operation's request element")
        return version, envelope, element

    def _authorize(self, envelope: Any, version: str) -> None:
        key = presented_key(request.headers)
        authorization = request.authorization
        if key is None and authorization is not None and authorization.type == "basic":
            key = authorization.password or None
        if key is None:
            key = _username_token_password(envelope)
        principal = self._credentials.identify(key) if self._credentials is not None and key else None
        if principal is None:
            raise SoapFault("a valid API key (X-API-Key, bearer token, HTTP basic or WS-Security password) "
                            "is required", status=401, headers={"WWW-Authenticate": 'Bearer realm="esb"'})
        if not principal.may_send(self.route):
            raise SoapFault(f'"{principal.name}" may not call route "{self.route}"', status=403)

    def _check_call(self, element: Any, version: str) -> None:
        expected = self.request_element.qname if self.request_element is not None else None
        if expected is not None and etree.QName(element) != etree.QName(expected):
            raise SoapFault(f"this endpoint accepts {self.info.name} ({etree.QName(expected).localname} in "
                            f"{etree.QName(expected).namespace}), not {_clark_to_text(element.tag)}")
        if version == "1.1":
            action = (request.headers.get("SOAPAction") or "").strip().strip('"')
        else:
            action = (request.mimetype_params.get("action") or "").strip().strip('"')
        if action and self.info.soap_action and action != self.info.soap_action:
            raise SoapFault(f"SOAP action {action!r} is not this endpoint's {self.info.soap_action!r}")
        if self.schema is not None:
            problems = schema_problems(self.schema, element)
            if problems:
                raise SoapFault(f"the {self.info.name} request does not match the WSDL's schema",
                                problems=problems)

    # the answers
    def _accepted_response(self, accepted, version: str) -> Response:
        namespace = SOAP11_ENVELOPE if version == "1.1" else SOAP12_ENVELOPE
        ids = list(accepted.message_ids)
        envelope = etree.Element(f"{{{namespace}}}Envelope", nsmap={"soap": namespace, "esb": ESB_NAMESPACE})
        header = etree.SubElement(envelope, f"{{{namespace}}}Header")
        summary = etree.SubElement(header, f"{{{ESB_NAMESPACE}}}Accepted")
        for message_id in ids:
            etree.SubElement(summary, f"{{{ESB_NAMESPACE}}}MessageId").text = message_id
        etree.SubElement(summary, f"{{{ESB_NAMESPACE}}}Duplicate").text = str(accepted.duplicate).lower()
        body = etree.SubElement(envelope, f"{{{namespace}}}Body")
        output = self.info.output_element()
        if output is not None:
            body.append(response_element(output, ids[0] if ids else ""))
        return _soap_response(envelope, 200, version)

    def _serve_wsdl(self) -> Response:
        if not any(name.lower() == "wsdl" for name in request.args):
            raise_text = "GET ?wsdl for the service description; calls are POSTed SOAP envelopes"
            return fault_response(SoapFault(raise_text, status=405, headers={"Allow": "GET, POST"}), "1.1")
        tree = etree.parse(str(self.wsdl), safe_parser())
        address = request.base_url
        for port in tree.iterfind(f"{{{WSDL_NAMESPACE}}}service/{{{WSDL_NAMESPACE}}}port"):
            for child in port:
                if isinstance(child.tag, str) and etree.QName(child).localname == "address":
                    child.set("location", address)
        data = etree.tostring(tree, encoding="utf-8", xml_declaration=True)
        return Response(data, 200, content_type="text/xml; charset=utf-8")


def _clark_to_text(tag: str) -> str:
    name = etree.QName(tag)
    return f"{name.localname} in {name.namespace}" if name.namespace else name.localname


def parse_envelope(data: bytes) -> Any:
    """The root element of a request, parsed safely; a Client fault for bad or unsafe XML."""
    if not data.strip():
        raise SoapFault("the request body is empty")
    try:
        root = safe_root(data)
    except DecodeError as error:
        raise SoapFault(error.message) from None
    if any(isinstance(node, etree._Entity) for node in root.iter()):
        raise SoapFault("XML entity references are refused")
    if etree.QName(root).localname != "Envelope":
        raise SoapFault(f"the body is not a SOAP envelope (its root is {etree.QName(root).localname})")
    return root


def _check_must_understand(envelope: Any, namespace: str) -> None:
    header = envelope.find(f"{{{namespace}}}Header")
    if header is None:
        return
    for block in header:
        if not isinstance(block.tag, str) or etree.QName(block).namespace == WSSE_NAMESPACE:
            continue
        if block.get(f"{{{namespace}}}mustUnderstand") in ("1", "true"):
            raise SoapFault(f"header {_clark_to_text(block.tag)} is marked mustUnderstand, and this "
                            "endpoint does not understand it", code="MustUnderstand")


def _username_token_password(envelope: Any) -> str | None:
    namespace = etree.QName(envelope).namespace
    security = f"{{{namespace}}}Header/{{{WSSE_NAMESPACE}}}Security"
    token = envelope.find(f"{security}/{{{WSSE_NAMESPACE}}}UsernameToken")
    if token is None:
        return None
    password = token.find(f"{{{WSSE_NAMESPACE}}}Password")
    if password is None:
        return None
    if (password.get("Type") or "").endswith("#PasswordDigest"):
        raise SoapFault("a WS-Security PasswordDigest cannot be checked here: send PasswordText over TLS, "
                        "or an API key header", status=401)
    return (password.text or "").strip() or None


def response_element(output: Any, message_id: str) -> Any:
    """The operation's response element with the message id in its first id-like field (rendered by
    zeep from the WSDL); when the response type needs more than that, the element with that field."""
    names = _child_names(output) or []
    field = next((name for name in names if _ID_NAME.match(name) or name.lower() == "messageid"), None)
    values = {field: message_id} if field else {}
    holder = etree.Element("holder")
    try:
        output.render(holder, output(**values))
        return holder[0]
    except (zeep.exceptions.Error, TypeError, ValueError):
        qname = etree.QName(output.qname)
        element = etree.Element(qname.text)
        if field:
            child_namespace = qname.namespace if _qualified(output) else None
            etree.SubElement(element, etree.QName(child_namespace, field).text if child_namespace
                             else field).text = message_id
        return element


def _qualified(output: Any) -> bool:
    try:
        return bool(output.type.elements[0][1].qname.namespace)
    except (AttributeError, IndexError):
        return True


def fault_response(fault: SoapFault, version: str) -> Response:
    """A SOAP fault in the structure of `version`; the problems are listed in the reason and, one
    element each, in the detail (`esb:problems/esb:problem` with path, expected and got)."""
    namespace = SOAP11_ENVELOPE if version == "1.1" else SOAP12_ENVELOPE
    reason = fault.reason + "".join(f"; {problem}" for problem in fault.problems[:20])
    if len(fault.problems) > 20:
        reason += f"; and {len(fault.problems) - 20} more"
    envelope = etree.Element(f"{{{namespace}}}Envelope", nsmap={"soap": namespace, "esb": ESB_NAMESPACE})
    body = etree.SubElement(envelope, f"{{{namespace}}}Body")
    node = etree.SubElement(body, f"{{{namespace}}}Fault")
    if version == "1.1":
        code = fault.code or ("Client" if fault.sender else "Server")
        etree.SubElement(node, "faultcode").text = f"soap:{code}"
        etree.SubElement(node, "faultstring").text = reason
        detail = etree.SubElement(node, "detail") if fault.problems else None
    else:
        code = fault.code or ("Sender" if fault.sender else "Receiver")
        value = etree.SubElement(etree.SubElement(node, f"{{{namespace}}}Code"), f"{{{namespace}}}Value")
        value.text = f"soap:{code}"
        text = etree.SubElement(etree.SubElement(node, f"{{{namespace}}}Reason"), f"{{{namespace}}}Text")
        text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        text.text = reason
        detail = etree.SubElement(node, f"{{{namespace}}}Detail") if fault.problems else None
    if detail is not None:
        listing = etree.SubElement(detail, f"{{{ESB_NAMESPACE}}}problems")
        for problem in fault.problems:
            item = etree.SubElement(listing, f"{{{ESB_NAMESPACE}}}problem", path=problem.path,
                                    expected=problem.expected)
            if problem.got:
                item.set("got", problem.got)
    status = fault.status or (400 if version == "1.2" and fault.sender else 500)
    response = _soap_response(envelope, status, version)
    response.headers.update(fault.headers)
    return response


def _soap_response(envelope: Any, status: int, version: str) -> Response:
    content_type = "text/xml" if version == "1.1" else "application/soap+xml"
    data = etree.tostring(envelope, encoding="utf-8", xml_declaration=True)
    return Response(data, status, content_type=f"{content_type}; charset=utf-8")


# --- the WSDL's schema, for checking inbound requests -----------------------------------------------

_INLINE_PREFIX = "esb-inline-schema-"


class _InlineSchemas(etree.Resolver):
    """Resolves the names given to a WSDL's inline schemas; files on disk load as usual."""

    def __init__(self, schemas: dict[str, bytes]):
        super().__init__()
        self.schemas = schemas

    def resolve(self, url, public_id, context):
        name = str(url).rpartition("/")[2]
        if name in self.schemas:
            return self.resolve_string(self.schemas[name], context, base_url=url)
        if str(url).startswith(("http:", "https:", "ftp:")):
            raise WsdlError(f"the WSDL's schema imports {url}: nothing is fetched over the network")
        return None


_schemas: dict[tuple[str, int, int], Any] = {}


def request_schema(wsdl: str | os.PathLike) -> Any:
    """An lxml XMLSchema of every schema in the WSDL's types (and the local files they import),
    cached per file version; None (with a warning) when libxml2 cannot compile it."""
    resolved = Path(wsdl).resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    with _documents_lock:
        if key in _schemas:
            return _schemas[key]
    try:
        schema = _compile_schema(resolved)
    except (etree.Error, WsdlError) as error:
        log.warning("the schema of %s cannot be compiled, inbound requests are checked by element name "
                    "only: %s", wsdl, error)
        schema = None
    with _documents_lock:
        _schemas[key] = schema
    return schema


def _compile_schema(wsdl: Path) -> Any:
    tree = etree.parse(str(wsdl), safe_parser())
    inline: dict[str, bytes] = {}
    namespaces: dict[str | None, str] = {}
    for index, schema in enumerate(tree.iterfind(f"{{{WSDL_NAMESPACE}}}types/{{{XSD_NAMESPACE}}}schema")):
        name = f"{_INLINE_PREFIX}{index}.xsd"
        namespaces.setdefault(schema.get("targetNamespace"), name)
        standalone = etree.Element(schema.tag, attrib=dict(schema.attrib), nsmap=schema.nsmap)
        standalone.extend(copy.deepcopy(child) for child in schema)
        inline[name] = standalone
    if not inline:
        return None
    for standalone in inline.values():  # imports of a sibling inline schema name it
        for imported in standalone.iterfind(f"{{{XSD_NAMESPACE}}}import"):
            sibling = namespaces.get(imported.get("namespace"))
            if imported.get("schemaLocation") is None and sibling is not None:
                imported.set("schemaLocation", sibling)
    texts = {name: etree.tostring(element) for name, element in inline.items()}
    wrapper = etree.Element(f"{{{XSD_NAMESPACE}}}schema", nsmap={"xsd": XSD_NAMESPACE})
    for namespace, name in namespaces.items():
        if namespace is not None:
            etree.SubElement(wrapper, f"{{{XSD_NAMESPACE}}}import", namespace=namespace, schemaLocation=name)
    parser = safe_parser(_InlineSchemas(texts))
    document = etree.fromstring(etree.tostring(wrapper), parser, base_url=str(wsdl))
    return etree.XMLSchema(document)


_PREFIXES = re.compile(r"[A-Za-z_][\w.-]*:(?=[A-Za-z_])")
_CLARK = re.compile(r"\{[^}]*\}")


def schema_problems(schema: Any, element: Any) -> list[FieldProblem]:
    """Every way the request element breaks the schema, one FieldProblem each (path without
    namespaces, libxml2's sentence)."""
    document = etree.fromstring(etree.tostring(element), safe_parser())
    if schema.validate(document):
        return []
    problems = []
    for entry in schema.error_log:
        path = _PREFIXES.sub("", entry.path or "")
        problems.append(FieldProblem(path or f"line {entry.line}", _CLARK.sub("", entry.message)))
    return problems


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
))

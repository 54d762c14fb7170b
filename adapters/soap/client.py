"""Calling an operation: the zeep client (auth, per-thread sessions), the classification of what
went wrong (a fault, an HTTP error, a timeout) as Retryable or Permanent, and the sink.

The rendered document (JSON, or XML whose root element is dropped) becomes the operation's
keyword arguments, merged over `params`. The message id travels as the HTTP header
`Idempotency-Key` (and the correlation id as `X-Correlation-Id`): a header leaves the WSDL's
request type untouched, so any service can log or de-duplicate by it. Outcomes: a SOAP 1.1
`Client` / SOAP 1.2 `Sender` fault (also `VersionMismatch`, `MustUnderstand`), a request that does
not match the WSDL, or an HTTP 4xx without a fault is permanent; a `Server` / `Receiver` fault, an
unknown fault code, a timeout, a connection error and HTTP 408/425/429/5xx are retryable.
"""

from __future__ import annotations

import re
import threading
from decimal import Decimal
from typing import Any

import requests
import zeep
import zeep.exceptions
import zeep.helpers
from lxml import etree
from zeep.wsse.username import UsernameToken

from adapters.soap.wsdl import WSDL_LOAD_TIMEOUT, WsdlError, find_operation, load_wsdl, zeep_settings
from esb import jsonfmt
from esb.codecs.xml import parse as parse_xml_document
from esb.errors import DecodeError, Permanent, Retryable
from esb.plugins import DEFAULT_TIMEOUT, Sink

PERMANENT_FAULT_CODES = frozenset({"client", "sender", "versionmismatch", "mustunderstand",
                                   "dataencodingunknown"})
"""Fault codes (local names, SOAP 1.1 and 1.2) that retrying the same request cannot fix."""

RETRYABLE_STATUS = frozenset({408, 425, 429})


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
            client = zeep.Client(self.document, transport=transport, wsse=wsse, settings=zeep_settings())
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


ID_LIKE_NAME = re.compile(r".*(Id|ID|_id|Number|_number)$|id$")


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
            if ID_LIKE_NAME.match(name) and isinstance(value, str | int | Decimal):
                return str(value)
    return None

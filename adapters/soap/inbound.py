"""The inbound endpoint: `POST /soap/<route>` (SOAP 1.1 and 1.2) and `GET /soap/<route>?wsdl`."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from lxml import etree

from adapters.soap.envelopes import SoapFault, fault_response, response_element, soap_response
from adapters.soap.schema import request_schema, schema_problems
from adapters.soap.wsdl import (
    ESB_NAMESPACE,
    SOAP11_ENVELOPE,
    SOAP12_ENVELOPE,
    WSDL_NAMESPACE,
    WSSE_NAMESPACE,
    WsdlError,
    find_operation,
)
from esb import push
from esb.codecs.xml import safe_parser, safe_root
from esb.credentials import presented_key
from esb.errors import DecodeError, InputError
from esb.plugins import DEFAULT_MAX_BODY_BYTES, RawMessage, Source, SourceContext


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
                accepted = push.store(self._submit, raw, advice=", try again later",
                                      idempotency_key=request.headers.get("Idempotency-Key") or None)
            except InputError as error:
                raise SoapFault(error.message, problems=error.problems) from None
        except push.Refusal as refusal:
            return fault_response(SoapFault.from_refusal(refusal), version)
        except SoapFault as fault:
            return fault_response(fault, version)
        return self._accepted_response(accepted, version)

    def _read_envelope(self) -> tuple[str, Any, Any]:
        push.refuse_declared_length(request, self.max_body_bytes, what="request")
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
        body = push.read_body(request, self.max_body_bytes, what="request")
        envelope = parse_envelope(body)
        namespace = etree.QName(envelope).namespace
        if namespace != (SOAP11_ENVELOPE if version == "1.1" else SOAP12_ENVELOPE):
            other = "1.2" if namespace == SOAP12_ENVELOPE else "1.1" if namespace == SOAP11_ENVELOPE else None
            reason = (f"a SOAP {other} envelope was sent as {media_type} (SOAP {version})" if other else
                      f"the envelope's namespace {namespace!r} is not SOAP {version}'s")
            raise SoapFault(reason, code="VersionMismatch")
        _check_must_understand(envelope, namespace)
        return version, envelope, _request_element(envelope, namespace)

    def _authorize(self, envelope: Any, version: str) -> None:
        """The caller's key from a header, HTTP basic or a WS-Security UsernameToken; a Refusal
        (401/403) unless it may send to this route."""
        key = presented_key(request.headers)
        authorization = request.authorization
        if key is None and authorization is not None and authorization.type == "basic":
            key = authorization.password or None
        if key is None:
            key = _username_token_password(envelope)
        push.authorize(self._credentials, self.route, key, action="call",
                       accepted="API key (X-API-Key, bearer token, HTTP basic or WS-Security password)")

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
        return soap_response(envelope, 200, version)

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


def _request_element(envelope: Any, namespace: str) -> Any:
    """The one element of the envelope's one Body: two Bodies, or a second element beside the call
    (WS-I Basic Profile R2201), would be a part the bus silently drops, so each is a Client fault."""
    bodies = envelope.findall(f"{{{namespace}}}Body")
    if len(bodies) != 1:
        raise SoapFault(f"a SOAP envelope holds exactly one Body, this one holds {len(bodies)}")
    elements = [child for child in bodies[0] if isinstance(child.tag, str)]
    if not elements:
        raise SoapFault("the SOAP Body is empty: it must hold the operation's request element")
    if len(elements) > 1:
        raise SoapFault(f"the SOAP Body holds {len(elements)} elements: it must hold the operation's "
                        "request element alone")
    return elements[0]


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

"""A real SOAP service on loopback for the SOAP adapter's tests, and the tests of that service.

`SoapResponder` is a Flask app served by esb.http_server on a free port. It checks each request the way a
strict SOAP stack does: the content type and the SOAP version, the `SOAPAction`, and the body
element against the XSD of the WSDL (with lxml, independently of the adapter's own code). A bad
request gets a Client/Sender fault. A valid one goes to the handler registered for its operation,
which returns the response element (lxml) or raises `Reply` to answer something else: a fault, an
HTTP error page, a slow answer. Every request is kept in `requests` for the test to look at.

The helpers live in a `test_` module because the files of the SOAP adapter's tests are named so.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from flask import Flask, Response
from flask import request as flask_request
from lxml import etree

from esb.http_server import HttpServer

DATA = Path(__file__).parent / "data" / "soap"
ERP_WSDL = DATA / "erp.wsdl"
ERP12_WSDL = DATA / "erp12.wsdl"
ERP_NAMESPACE = "urn:example:erp"
NAV_NAMESPACE = "urn:microsoft-dynamics-schemas/page/customerlist"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
XSD = "http://www.w3.org/2001/XMLSchema"


def nav_wsdl(samples_dir: Path) -> Path:
    return samples_dir / "wsdl" / "nav_page_CustomerList.wsdl.xml"


class Reply(Exception):  # noqa: N818 - raised by a handler to answer with exactly this
    """Raised by a handler: answer with this status, body and content type (after `delay` s)."""

    def __init__(self, status: int, body: bytes = b"", content_type: str = "text/xml; charset=utf-8",
                 delay: float = 0.0):
        super().__init__(status)
        self.status, self.body, self.content_type, self.delay = status, body, content_type, delay


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    element: etree._Element | None = None  # the body's request element, when the request was valid

    def text(self, name: str) -> str | None:
        """The text of the first descendant element called `name` (any namespace)."""
        found = self.element.xpath(f".//*[local-name() = '{name}']")
        return found[0].text if found else None


@dataclass
class SoapResponder:
    wsdl: Path
    version: str = "1.1"
    handlers: dict[str, Callable[[etree._Element], etree._Element]] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    server: HttpServer | None = None
    clients: list = field(default_factory=list)  # closed before the server stops (no idle keep-alive)

    def __post_init__(self):
        definitions = etree.parse(str(self.wsdl)).getroot()
        self.schema = _schema_of(definitions, self.wsdl)
        self.actions = {operation.get("soapAction"): operation.getparent().get("name")
                        for operation in definitions.iter() if operation.get("soapAction") is not None}
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{self.server.url}/service"

    def start(self) -> SoapResponder:
        app = Flask("soap-responder")
        app.add_url_rule("/service", view_func=self._answer, methods=["POST"])
        self.server = HttpServer(app, port=0).start()
        return self

    def client(self, client):
        """Remember a sink or source (anything with close() or stop()) to close before stopping."""
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            for name in ("close", "stop"):
                if hasattr(client, name):
                    getattr(client, name)()
        self.server.stop()

    def _answer(self):
        body = flask_request.get_data()
        received = Received(dict(flask_request.headers), body)
        with self.lock:
            self.requests.append(received)
        namespace = SOAP11 if self.version == "1.1" else SOAP12
        try:
            operation, element = self._check(body, namespace)
            received.element = element
            handler = self.handlers.get(operation)
            if handler is None:
                raise Reply(*fault(self.version, sender=True, reason=f"no handler for {operation}"))
            answer = handler(element)
        except Reply as reply:
            time.sleep(reply.delay)
            return Response(reply.body, reply.status, content_type=reply.content_type)
        return Response(envelope(self.version, answer), 200, content_type=_content_type(self.version))

    def _check(self, body: bytes, namespace: str) -> tuple[str, etree._Element]:
        expected_type = "text/xml" if self.version == "1.1" else "application/soap+xml"
        if flask_request.mimetype != expected_type:
            raise Reply(*fault(self.version, True, f"content type {flask_request.mimetype}"))
        if self.version == "1.1":
            action = flask_request.headers.get("SOAPAction", "").strip('"')
        else:
            action = flask_request.mimetype_params.get("action", "")
        if action not in self.actions:
            raise Reply(*fault(self.version, True, f"unknown action {action!r}"))
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        root = etree.fromstring(body, parser)
        found = root.find(f"{{{namespace}}}Body")
        element = found[0]
        document = etree.fromstring(etree.tostring(element))
        if not self.schema.validate(document):
            raise Reply(*fault(self.version, True, f"invalid request: {self.schema.error_log.last_error}"))
        if etree.QName(element).localname != self.actions[action]:
            raise Reply(*fault(self.version, True, "the action does not match the body"))
        return self.actions[action], element


def _schema_of(definitions: etree._Element, wsdl: Path) -> etree.XMLSchema:
    """The XSD of a WSDL: the file its types import, or its one inline schema (with the namespace
    declarations it inherits from the WSDL)."""
    schema = definitions.find(f"{{{WSDL}}}types/{{{XSD}}}schema")
    imported = schema.find(f"{{{XSD}}}import")
    if imported is not None and imported.get("schemaLocation"):
        return etree.XMLSchema(etree.parse(str(wsdl.parent / imported.get("schemaLocation"))))
    standalone = etree.Element(schema.tag, attrib=dict(schema.attrib), nsmap=schema.nsmap)
    standalone.extend(copy.deepcopy(child) for child in schema)
    return etree.XMLSchema(etree.fromstring(etree.tostring(standalone)))


def _content_type(version: str) -> str:
    return "text/xml; charset=utf-8" if version == "1.1" else "application/soap+xml; charset=utf-8"


def envelope(version: str, element: etree._Element | None, header: etree._Element | None = None) -> bytes:
    namespace = SOAP11 if version == "1.1" else SOAP12
    root = etree.Element(f"{{{namespace}}}Envelope", nsmap={"s": namespace})
    if header is not None:
        etree.SubElement(root, f"{{{namespace}}}Header").append(header)
    body = etree.SubElement(root, f"{{{namespace}}}Body")
    if element is not None:
        body.append(element)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def fault(version: str, sender: bool, reason: str, status: int | None = None,
          code: str | None = None) -> tuple[int, bytes, str]:
    """(status, body, content type) of a SOAP fault as a server of that version sends it."""
    namespace = SOAP11 if version == "1.1" else SOAP12
    node = etree.Element(f"{{{namespace}}}Fault")
    if version == "1.1":
        etree.SubElement(node, "faultcode").text = code or ("s:Client" if sender else "s:Server")
        etree.SubElement(node, "faultstring").text = reason
        default_status = 500
    else:
        code_node = etree.SubElement(etree.SubElement(node, f"{{{namespace}}}Code"), f"{{{namespace}}}Value")
        code_node.text = code or ("s:Sender" if sender else "s:Receiver")
        reason_node = etree.SubElement(node, f"{{{namespace}}}Reason")
        etree.SubElement(reason_node, f"{{{namespace}}}Text").text = reason
        default_status = 400 if sender else 500
    return status or default_status, envelope(version, node), _content_type(version)


def element(tag: str, namespace: str = ERP_NAMESPACE, **children) -> etree._Element:
    """`<tag><name>value</name>...</tag>` in `namespace`; list values repeat the child."""
    node = etree.Element(f"{{{namespace}}}{tag}")
    for name, value in children.items():
        for one in value if isinstance(value, list) else [value]:
            if isinstance(one, etree._Element):
                one.tag = f"{{{namespace}}}{name}"
                node.append(one)
            else:
                etree.SubElement(node, f"{{{namespace}}}{name}").text = str(one)
    return node


@pytest.fixture
def erp_service():
    responder = SoapResponder(ERP_WSDL).start()
    yield responder
    responder.stop()


# --- the responder itself ------------------------------------------------------------------------

def test_the_responder_answers_a_valid_request_and_faults_an_invalid_one(erp_service):
    erp_service.handlers["PostGoodsReceipt"] = lambda request: element("PostGoodsReceiptResponse",
                                                                       MessageId="m1")
    line = element("Line", LineNumber=1, Sku="A", Quantity="2.5")
    good = element("PostGoodsReceipt", ReceiptNumber="GR1", PurchaseOrder="PO1", Warehouse="WH1",
                   ReceivedAt="2024-05-01T10:00:00Z", Line=[line])
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:example:erp:PostGoodsReceipt"'}

    answered = requests.post(erp_service.url, data=envelope("1.1", good), headers=headers, timeout=5)
    bad = copy.deepcopy(good)
    bad.remove(bad[0])
    refused = requests.post(erp_service.url, data=envelope("1.1", bad), headers=headers, timeout=5)

    assert answered.status_code == 200
    assert etree.fromstring(answered.content).xpath("string(//*[local-name() = 'MessageId'])") == "m1"
    assert refused.status_code == 500
    assert b"s:Client" in refused.content and b"ReceiptNumber" in refused.content

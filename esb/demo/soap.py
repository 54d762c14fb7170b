"""A small SOAP 1.1 service (document/literal) for the simulated ERP: one Flask view per WSDL.

It checks each request as a strict SOAP stack does: the content type, the SOAPAction against the
WSDL, the body element against the WSDL's own XML schema (lxml), and answers a `Client` fault for
anything wrong with the request. A valid one goes to the handler of its operation, which returns
the response element, or raises `SoapServiceFault` (a fault it chose). `GET ?wsdl` serves the WSDL
with the service's real address in it.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from pathlib import Path

from flask import Response, request
from lxml import etree

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
XSD = "http://www.w3.org/2001/XMLSchema"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
CONTENT_TYPE = "text/xml; charset=utf-8"

Handler = Callable[[etree._Element], etree._Element]


class SoapServiceFault(Exception):  # noqa: N818 - it is a SOAP fault, named as SOAP names it
    """A fault a handler answers with: `client` for a request the caller must fix."""

    def __init__(self, reason: str, *, client: bool = True):
        super().__init__(reason)
        self.reason, self.client = reason, client


class SoapService:
    """The operations of one WSDL file; `view()` answers a POST, `wsdl(address)` the `?wsdl` GET."""

    def __init__(self, wsdl: Path, handlers: dict[str, Handler]):
        self.wsdl_path = Path(wsdl)
        definitions = etree.parse(str(self.wsdl_path), _parser()).getroot()
        self.namespace = definitions.get("targetNamespace")
        self.schema = _inline_schema(definitions)
        self.actions = {node.get("soapAction"): node.getparent().get("name")
                        for node in definitions.iter(f"{{{WSDL_SOAP}}}operation")}
        unknown = set(handlers) - set(self.actions.values())
        if unknown:
            raise ValueError(f"{wsdl} has no operation {', '.join(sorted(unknown))}")
        self.handlers = handlers

    def wsdl(self, address: str) -> bytes:
        document = etree.parse(str(self.wsdl_path), _parser())
        for node in document.getroot().iter(f"{{{WSDL_SOAP}}}address"):
            node.set("location", address)
        return etree.tostring(document, xml_declaration=True, encoding="utf-8")

    def answer(self, handle: Callable[[str, etree._Element, Callable[[], etree._Element]], etree._Element]
               | None = None) -> Response:
        """The answer to the current Flask request; `handle(operation, element, call)` may wrap the
        handler call (the simulator records the call there)."""
        try:
            operation, element = self._read()
            handler = self.handlers.get(operation)
            if handler is None:
                raise SoapServiceFault(f"the operation {operation} is not served here")
            call = functools.partial(handler, element)
            answer = handle(operation, element, call) if handle else call()
        except SoapServiceFault as fault:
            return Response(fault_envelope(fault.reason, client=fault.client), 500, content_type=CONTENT_TYPE)
        return Response(envelope(answer), 200, content_type=CONTENT_TYPE)

    def _read(self) -> tuple[str, etree._Element]:
        if request.mimetype != "text/xml":
            raise SoapServiceFault(f"a SOAP 1.1 request is text/xml, not {request.mimetype or 'nothing'}")
        action = request.headers.get("SOAPAction", "").strip('"')
        if action not in self.actions:
            raise SoapServiceFault(f"unknown SOAPAction {action!r}")
        try:
            root = etree.fromstring(request.get_data(), _parser())
        except etree.XMLSyntaxError as error:
            raise SoapServiceFault(f"not XML: {error}") from None
        body = root.find(f"{{{SOAP11}}}Body")
        if body is None or len(body) != 1:
            raise SoapServiceFault("no SOAP 1.1 Body with one element")
        element = body[0]
        if etree.QName(element).localname != self.actions[action]:
            raise SoapServiceFault("the SOAPAction does not match the body element")
        if not self.schema.validate(etree.fromstring(etree.tostring(element))):
            raise SoapServiceFault(f"invalid request: {self.schema.error_log.last_error.message}")
        return self.actions[action], element

    def element(self, tag: str, **children) -> etree._Element:
        """`<tag><name>value</name>...</tag>` in the service's namespace; a list repeats the child,
        a dict nests, None leaves the child out."""
        node = etree.Element(f"{{{self.namespace}}}{tag}")
        for name, value in children.items():
            for one in value if isinstance(value, list) else [value]:
                if one is None:
                    continue
                if isinstance(one, dict):
                    node.append(self.element(name, **one))
                else:
                    etree.SubElement(node, f"{{{self.namespace}}}{name}").text = str(one)
        return node


def text(element: etree._Element, name: str) -> str | None:
    """The text of the first child (any depth) called `name`, any namespace."""
    found = element.xpath(f".//*[local-name() = '{name}']")
    return found[0].text if found else None


def envelope(element: etree._Element) -> bytes:
    root = etree.Element(f"{{{SOAP11}}}Envelope", nsmap={"soap": SOAP11})
    etree.SubElement(root, f"{{{SOAP11}}}Body").append(element)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def fault_envelope(reason: str, *, client: bool) -> bytes:
    fault = etree.Element(f"{{{SOAP11}}}Fault")
    etree.SubElement(fault, "faultcode").text = "soap:Client" if client else "soap:Server"
    etree.SubElement(fault, "faultstring").text = reason
    return envelope(fault)


def _inline_schema(definitions: etree._Element) -> etree.XMLSchema:
    schema = definitions.find(f"{{{WSDL}}}types/{{{XSD}}}schema")
    standalone = etree.Element(schema.tag, attrib=dict(schema.attrib), nsmap=schema.nsmap)
    standalone.extend(copy.deepcopy(child) for child in schema)
    return etree.XMLSchema(etree.fromstring(etree.tostring(standalone)))


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

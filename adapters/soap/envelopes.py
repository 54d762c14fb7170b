"""The envelopes the inbound endpoint answers with: SOAP faults in the caller's SOAP version,
and the operation's response element rendered from the WSDL."""

from __future__ import annotations

from typing import Any

import zeep.exceptions
from flask import Response
from lxml import etree

from adapters.soap.client import ID_LIKE_NAME
from adapters.soap.wsdl import ESB_NAMESPACE, SOAP11_ENVELOPE, SOAP12_ENVELOPE, child_names
from esb import push
from esb.errors import FieldProblem


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

    @classmethod
    def from_refusal(cls, refusal: push.Refusal) -> SoapFault:
        """A push source's refusal as a fault: 401, 403 and 413 are the caller's (Client/Sender, with
        that HTTP status); 503 is the bus's (Server/Receiver at HTTP 500, as SOAP wants), with
        `Retry-After`."""
        if refusal.status >= 500:
            return cls(refusal.message, sender=False, headers=refusal.headers)
        return cls(refusal.message, status=refusal.status, headers=refusal.headers)


def response_element(output: Any, message_id: str) -> Any:
    """The operation's response element with the message id in its first id-like field (rendered by
    zeep from the WSDL); when the response type needs more than that, the element with that field."""
    names = child_names(output) or []
    field = next((name for name in names if ID_LIKE_NAME.match(name) or name.lower() == "messageid"), None)
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
    response = soap_response(envelope, status, version)
    response.headers.update(fault.headers)
    return response


def soap_response(envelope: Any, status: int, version: str) -> Response:
    content_type = "text/xml" if version == "1.1" else "application/soap+xml"
    data = etree.tostring(envelope, encoding="utf-8", xml_declaration=True)
    return Response(data, status, content_type=f"{content_type}; charset=utf-8")

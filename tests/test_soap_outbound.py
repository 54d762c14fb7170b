"""The SOAP sink: a mapped document becomes an operation's request, sent with zeep to a real SOAP
service on loopback; every failure is classified as retryable or permanent."""

from __future__ import annotations

import socket

import pytest
from lxml import etree

from adapters.soap import SoapSink, fault_code_name
from esb import jsonfmt
from esb.envelope import Envelope
from esb.errors import Permanent, Retryable
from esb.routes import Endpoint
from tests.test_soap_responder import (
    ERP12_WSDL,
    ERP_WSDL,
    NAV_NAMESPACE,
    Reply,
    SoapResponder,
    element,
    envelope,
    fault,
    nav_wsdl,
)

RECEIPT = {"ReceiptNumber": "GR-1", "PurchaseOrder": "PO-7", "Warehouse": "WH1",
           "ReceivedAt": "2024-05-01T10:00:00+08:00",
           "Line": [{"LineNumber": 1, "Sku": "A-1", "Quantity": "2.5", "Unit": "EA"},
                    {"LineNumber": 2, "Sku": "B/2", "Quantity": 10}]}


def message() -> Envelope:
    return Envelope(type="goods_receipt", payload={}, source="wms", correlation_id="PO-7")


def sink_for(service: SoapResponder, operation: str = "PostGoodsReceipt", *, wsdl=ERP_WSDL, params=None,
             **system) -> SoapSink:
    settings = {"wsdl": str(wsdl), "endpoint_url": service.url, "timeout": 5.0, "verify_tls": True, **system}
    return service.client(SoapSink(
        Endpoint("soap", {"system": "erp", "operation": operation, "params": params or {}}), settings))


def accept_receipt(request):
    return element("PostGoodsReceiptResponse", MessageId=f"ERP-{request[0].text}", Status="posted")


@pytest.fixture
def erp():
    service = SoapResponder(ERP_WSDL, handlers={"PostGoodsReceipt": accept_receipt}).start()
    yield service
    service.stop()


@pytest.fixture
def erp12():
    service = SoapResponder(ERP12_WSDL, version="1.2", handlers={"PostGoodsReceipt": accept_receipt}).start()
    yield service
    service.stop()


def test_a_mapped_document_becomes_the_request_and_the_answer_gives_the_target_id(erp):
    sink = sink_for(erp)
    sent = message()

    target_id = sink.deliver(sent, jsonfmt.dump_bytes(RECEIPT), "application/json")

    (received,) = erp.requests
    assert target_id == "ERP-GR-1"
    assert received.element is not None  # valid against the WSDL's XSD
    assert received.text("Sku") == "A-1" and received.element.xpath("count(//*[local-name()='Line'])") == 2
    assert received.headers["Idempotency-Key"] == sent.id
    assert received.headers["X-Correlation-Id"] == "PO-7"
    assert received.headers["Soapaction"] == '"urn:example:erp:PostGoodsReceipt"'


def test_fixed_params_are_sent_unless_the_document_sets_them(erp):
    sink = sink_for(erp, params={"Warehouse": "WH9", "PurchaseOrder": "PO-fixed"})
    document = {key: value for key, value in RECEIPT.items() if key != "Warehouse"}

    sink.deliver(message(), jsonfmt.dump_bytes(document), "application/json")

    assert erp.requests[0].text("Warehouse") == "WH9"
    assert erp.requests[0].text("PurchaseOrder") == "PO-7"


def test_an_xml_document_gives_the_parameters_under_its_root_element(erp):
    body = (b"<PostGoodsReceipt><ReceiptNumber>GR-X</ReceiptNumber><PurchaseOrder>PO-1</PurchaseOrder>"
            b"<Warehouse>WH1</Warehouse><ReceivedAt>2024-05-01T10:00:00Z</ReceivedAt>"
            b"<Line><LineNumber>1</LineNumber><Sku>S</Sku><Quantity>1</Quantity></Line></PostGoodsReceipt>")

    assert sink_for(erp).deliver(message(), body, "application/xml") == "ERP-GR-X"


def test_a_field_the_wsdl_does_not_know_is_permanent_and_named_and_nothing_is_sent(erp):
    document = {**RECEIPT, "RecieptNumber": "typo"}

    with pytest.raises(Permanent, match="RecieptNumber"):
        sink_for(erp).deliver(message(), jsonfmt.dump_bytes(document), "application/json")
    assert erp.requests == []


def test_a_missing_required_field_is_permanent_and_named(erp):
    document = {key: value for key, value in RECEIPT.items() if key != "ReceiptNumber"}

    with pytest.raises(Permanent, match="ReceiptNumber"):
        sink_for(erp).deliver(message(), jsonfmt.dump_bytes(document), "application/json")
    assert erp.requests == []


def test_a_document_that_is_not_an_object_is_permanent(erp):
    with pytest.raises(Permanent, match="object of the operation's parameters"):
        sink_for(erp).deliver(message(), b"[1, 2]", "application/json")


@pytest.mark.parametrize(("version", "sender", "outcome"), [
    ("1.1", True, Permanent), ("1.1", False, Retryable), ("1.2", True, Permanent), ("1.2", False, Retryable),
])
def test_a_client_or_sender_fault_is_permanent_and_a_server_or_receiver_fault_retryable(
        erp, erp12, version, sender, outcome):
    service = erp if version == "1.1" else erp12

    def refuse(request):
        raise Reply(*fault(version, sender, "receipt GR-1 is locked by user MEYER"))

    service.handlers["PostGoodsReceipt"] = refuse
    sink = sink_for(service, wsdl=ERP_WSDL if version == "1.1" else ERP12_WSDL)

    with pytest.raises(outcome, match="locked by user MEYER") as raised:
        sink.deliver(message(), jsonfmt.dump_bytes(RECEIPT), "application/json")
    assert ("Client" if version == "1.1" else "Sender") in str(raised.value) or not sender


def test_fault_codes_are_read_with_or_without_prefix_namespace_or_subcode():
    assert fault_code_name("soap:Client.Authentication") == "Client"
    assert fault_code_name("{http://www.w3.org/2003/05/soap-envelope}Receiver") == "Receiver"
    assert fault_code_name("Server") == "Server"
    assert fault_code_name(None) == ""


def test_an_unknown_fault_code_is_retryable(erp):
    def refuse(request):
        raise Reply(*fault("1.1", True, "try again", code="s:Busy"))

    erp.handlers["PostGoodsReceipt"] = refuse

    with pytest.raises(Retryable, match="Busy"):
        sink_for(erp).deliver(message(), jsonfmt.dump_bytes(RECEIPT), "application/json")


@pytest.mark.parametrize(("status", "outcome"), [(503, Retryable), (502, Retryable), (429, Retryable),
                                                 (404, Permanent), (401, Permanent)])
def test_an_http_error_without_a_fault_is_retryable_when_5xx_or_429_else_permanent(erp, status, outcome):
    def error_page(request):
        raise Reply(status, b"<html><body>gateway says no</body></html>", "text/html")

    erp.handlers["PostGoodsReceipt"] = error_page

    with pytest.raises(outcome, match=f"HTTP {status}"):
        sink_for(erp).deliver(message(), jsonfmt.dump_bytes(RECEIPT), "application/json")


def test_a_slow_answer_is_a_retryable_timeout(erp):
    def slow(request):
        raise Reply(*fault("1.1", False, "late"), delay=1.5)

    erp.handlers["PostGoodsReceipt"] = slow

    with pytest.raises(Retryable, match=r"no answer within 0.3 s"):
        sink_for(erp, timeout=0.3).deliver(message(), jsonfmt.dump_bytes(RECEIPT), "application/json")


def test_a_service_that_is_down_is_retryable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = {"wsdl": str(ERP_WSDL), "endpoint_url": f"http://127.0.0.1:{port}/service", "timeout": 2.0}
    sink = SoapSink(Endpoint("soap", {"operation": "PostGoodsReceipt", "params": {}}), settings)

    with pytest.raises(Retryable, match="ConnectionError"):
        sink.deliver(message(), jsonfmt.dump_bytes(RECEIPT), "application/json")


def test_an_answer_with_a_dtd_is_refused_and_nothing_is_expanded(erp):
    evil = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
            b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            b'<PostGoodsReceiptResponse xmlns="urn:example:erp"><MessageId>&b;</MessageId>'
            b"</PostGoodsReceiptResponse></s:Body></s:Envelope>")

    def answer_with_dtd(request):
        raise Reply(200, evil)

    erp.handlers["PostGoodsReceipt"] = answer_with_dtd

    with pytest.raises(Permanent, match="DTD") as raised:
        sink_for(erp).deliver(message(), jsonfmt.dump_bytes(RECEIPT), "application/json")
    assert "aaaaaaaaaa" not in str(raised.value)


def test_username_and_password_go_as_http_basic_auth(erp):
    sink_for(erp, username="esb", password="s3cret").deliver(message(), jsonfmt.dump_bytes(RECEIPT),
                                                              "application/json")

    assert erp.requests[0].headers["Authorization"] == "Basic ZXNiOnMzY3JldA=="
    assert b"UsernameToken" not in erp.requests[0].body


def test_with_wsse_username_and_password_go_as_a_ws_security_username_token(erp):
    sink_for(erp, username="esb", password="s3cret", wsse=True).deliver(
        message(), jsonfmt.dump_bytes(RECEIPT), "application/json")

    request = etree.fromstring(erp.requests[0].body)
    token = request.xpath("//*[local-name()='UsernameToken']")
    assert "Authorization" not in erp.requests[0].headers
    assert token and token[0].xpath("string(*[local-name()='Username'])") == "esb"
    assert token[0].xpath("string(*[local-name()='Password'])") == "s3cret"


def test_a_soap12_service_is_called_with_soap12(erp12):
    assert sink_for(erp12, wsdl=ERP12_WSDL).deliver(message(), jsonfmt.dump_bytes(RECEIPT),
                                                    "application/json") == "ERP-GR-1"
    assert erp12.requests[0].headers["Content-Type"].startswith("application/soap+xml")


def test_read_multiple_of_the_real_nav_wsdl_is_called_with_its_filters(samples_dir):
    def read_multiple(request):
        criteria = request.xpath("string(//*[local-name()='Criteria'])")
        customers = [element("CustomerList", NAV_NAMESPACE, No=f"C{n}", Name=f"Customer {n} ({criteria})")
                     for n in (1, 2)]
        result = element("ReadMultiple_Result", NAV_NAMESPACE, CustomerList=customers)
        return element("ReadMultiple_Result", NAV_NAMESPACE, ReadMultiple_Result=[result])

    service = SoapResponder(nav_wsdl(samples_dir), handlers={"ReadMultiple": read_multiple}).start()
    try:
        sink = sink_for(service, "ReadMultiple", wsdl=nav_wsdl(samples_dir), params={"setSize": 10})
        document = {"filter": [{"Field": "No", "Criteria": "C*"}]}

        target_id = sink.deliver(message(), jsonfmt.dump_bytes(document), "application/json")
    finally:
        service.stop()

    assert target_id is None  # a list of customers is not one id
    assert service.requests[0].text("setSize") == "10" and service.requests[0].text("Criteria") == "C*"


def test_the_envelope_helper_and_the_wsdl_address_are_not_used_when_endpoint_url_is_set(erp):
    # the WSDL says http://erp.invalid/...: every call above reached the loopback service instead
    sink_for(erp).deliver(message(), jsonfmt.dump_bytes(RECEIPT), "application/json")
    assert len(erp.requests) == 1 and envelope("1.1", None).startswith(b"<?xml")

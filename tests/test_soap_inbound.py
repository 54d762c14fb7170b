"""The inbound SOAP endpoint `POST /soap/<route>`: SOAP 1.1 and 1.2 calls, checked against the WSDL,
answered with the message id once stored, or with a fault that says what is wrong."""

from __future__ import annotations

import base64
import uuid

import pytest
import requests
import zeep
from lxml import etree

from adapters.soap import SoapInboundSource
from esb.codecs.xml import parse as parse_xml
from esb.credentials import Credentials, Principal, digest
from esb.errors import FieldProblem, MappingError, Unavailable
from esb.http_server import HttpServer
from esb.plugins import Accepted, SourceContext
from esb.routes import Endpoint
from esb.web import create_app
from tests.test_soap_responder import ERP12_WSDL, ERP_WSDL, SOAP11, SOAP12, element, envelope, nav_wsdl

ACTION = "urn:example:erp:PostGoodsReceipt"
KEY = "k-wms-sender"
SOAP11_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}"', "X-API-Key": KEY}
SOAP12_HEADERS = {"Content-Type": f'application/soap+xml; charset=utf-8; action="{ACTION}"', "X-API-Key": KEY}


class Bus:
    def __init__(self):
        self.received, self.keys, self.problem = [], {}, None

    def submit(self, raw, *, idempotency_key=None):
        self.received.append(raw)
        if self.problem is not None:
            raise self.problem
        if idempotency_key in self.keys:
            return Accepted((self.keys[idempotency_key],), duplicate=True)
        message_id = str(uuid.uuid4())
        if idempotency_key:
            self.keys[idempotency_key] = message_id
        return Accepted((message_id,))


def credentials() -> Credentials:
    return Credentials([(digest(KEY), Principal("wms", frozenset({"sender=gr-in"}))),
                        (digest("k-other"), Principal("shop", frozenset({"sender=orders-in"})))])


def mount(bus: Bus, wsdl=ERP_WSDL, operation="PostGoodsReceipt", route="gr-in", **options):
    app = create_app()
    endpoint = Endpoint("soap", {"operation": operation, "inbound": True, "wsdl": str(wsdl), "system": "wms",
                                 "max_body_bytes": 1_048_576, **options})
    source = SoapInboundSource(endpoint, None, route)
    source.start(SourceContext(route=route, submit=bus.submit, add_url_rule=app.add_url_rule,
                               data_dir=None, credentials=credentials()))
    return app


@pytest.fixture
def bus():
    return Bus()


@pytest.fixture
def client(bus):
    return mount(bus).test_client()


def receipt(**changes) -> etree._Element:
    fields = {"ReceiptNumber": "GR-1", "PurchaseOrder": "PO-7", "Warehouse": "WH1",
              "ReceivedAt": "2024-05-01T10:00:00+08:00",
              "Line": [element("Line", LineNumber=1, Sku="A-1", Quantity="2.5")], **changes}
    return element("PostGoodsReceipt", **{key: value for key, value in fields.items() if value is not None})


def fault_of(response) -> dict:
    """code, reason and problems of a SOAP 1.1 or 1.2 fault answer."""
    root = etree.fromstring(response.data if hasattr(response, "data") else response.content)
    code = root.xpath("string(//faultcode | //*[local-name()='Code']/*[local-name()='Value'])")
    reason = root.xpath("string(//faultstring | //*[local-name()='Reason']/*[local-name()='Text'])")
    problems = [dict(problem.attrib) for problem in root.iter("{urn:esb:soap}problem")]
    return {"code": code.rpartition(":")[2], "reason": reason, "problems": problems}


# --- real SOAP clients ------------------------------------------------------------------------------

@pytest.mark.parametrize(("wsdl", "binding"), [(ERP_WSDL, "ErpBinding"), (ERP12_WSDL, "ErpBinding12")])
def test_a_zeep_client_posts_a_goods_receipt_and_gets_the_message_id_in_the_response(bus, wsdl, binding):
    server = HttpServer(mount(bus, wsdl=wsdl), port=0).start()
    session = requests.Session()
    session.headers["X-API-Key"] = KEY
    try:
        caller = zeep.Client(str(wsdl), transport=zeep.Transport(session=session))
        service = caller.create_service(f"{{urn:example:erp}}{binding}", f"{server.url}/soap/gr-in")
        answer = service.PostGoodsReceipt(ReceiptNumber="GR-1", PurchaseOrder="PO-7", Warehouse="WH1",
                                          ReceivedAt="2024-05-01T10:00:00+08:00",
                                          Line=[{"LineNumber": 1, "Sku": "A-1", "Quantity": "2.5"}])
    finally:
        session.close()
        server.stop()

    (raw,) = bus.received
    assert uuid.UUID(answer.MessageId)
    assert raw.content_type == "application/xml"
    assert parse_xml(raw.body)["PostGoodsReceipt"]["Line"]["Sku"] == "A-1"
    assert raw.metadata["soap_version"] == ("1.1" if wsdl == ERP_WSDL else "1.2")


def test_the_wsdl_is_served_at_query_wsdl_with_this_endpoint_as_its_address(bus, samples_dir):
    server = HttpServer(mount(bus, wsdl=nav_wsdl(samples_dir), operation="ReadMultiple", route="customers"),
                        port=0).start()
    try:
        served = zeep.Client(f"{server.url}/soap/customers?wsdl")
        address = served.service._binding_options["address"]
    finally:
        server.stop()

    assert address == f"{server.url}/soap/customers"


# --- answers and faults -------------------------------------------------------------------------------

def test_a_soap11_call_is_answered_with_the_id_in_the_body_and_an_esb_header(client, bus):
    response = client.post("/soap/gr-in", data=envelope("1.1", receipt()), headers=SOAP11_HEADERS)

    root = etree.fromstring(response.data)
    assert response.status_code == 200 and response.mimetype == "text/xml"
    assert etree.QName(root).namespace == SOAP11
    message_id = root.xpath("string(//*[local-name()='PostGoodsReceiptResponse']/*)")
    assert root.xpath("string(//*[local-name()='Accepted']/*[local-name()='MessageId'])") == message_id
    assert root.xpath("string(//*[local-name()='Duplicate'])") == "false" and len(bus.received) == 1


def test_a_repeated_call_with_the_same_idempotency_key_gets_the_first_id_and_duplicate_true(client):
    headers = {**SOAP11_HEADERS, "Idempotency-Key": "GR-1"}

    first, again = (etree.fromstring(client.post("/soap/gr-in", data=envelope("1.1", receipt()),
                                                 headers=headers).data) for _ in range(2))

    ids = [root.xpath("string(//*[local-name()='MessageId'])") for root in (first, again)]
    assert ids[0] == ids[1]
    assert again.xpath("string(//*[local-name()='Duplicate'])") == "true"


def test_a_soap12_call_is_answered_in_soap12(client):
    response = client.post("/soap/gr-in", data=envelope("1.2", receipt()), headers=SOAP12_HEADERS)

    assert response.status_code == 200 and response.mimetype == "application/soap+xml"
    assert etree.QName(etree.fromstring(response.data)).namespace == SOAP12


def test_a_request_that_breaks_the_wsdls_schema_gets_a_client_fault_listing_each_problem(client, bus):
    bad = receipt(ReceivedAt="yesterday", Line=[element("Line", LineNumber=1, Sku="A-1", Quantity="two")])

    response = client.post("/soap/gr-in", data=envelope("1.1", bad), headers=SOAP11_HEADERS)

    fault = fault_of(response)
    assert response.status_code == 500 and fault["code"] == "Client"
    assert "does not match the WSDL's schema" in fault["reason"]
    assert any("yesterday" in problem["expected"] and "ReceivedAt" in problem["path"]
               for problem in fault["problems"])
    assert any("two" in problem["expected"] and "Quantity" in problem["path"]
               for problem in fault["problems"])
    assert bus.received == []


def test_a_document_the_mapping_refuses_gets_a_client_fault_in_11_and_a_sender_fault_400_in_12(client, bus):
    bus.problem = MappingError("cannot map the receipt", [FieldProblem("warehouse", "a known code", "WH1")])

    old = client.post("/soap/gr-in", data=envelope("1.1", receipt()), headers=SOAP11_HEADERS)
    new = client.post("/soap/gr-in", data=envelope("1.2", receipt()), headers=SOAP12_HEADERS)

    assert old.status_code == 500 and fault_of(old)["code"] == "Client"
    assert new.status_code == 400 and fault_of(new)["code"] == "Sender"
    assert fault_of(new)["problems"] == [{"path": "warehouse", "expected": "a known code", "got": "WH1"}]
    assert "warehouse: a known code (got WH1)" in fault_of(old)["reason"]


def test_when_the_bus_cannot_store_the_caller_gets_a_server_fault_to_retry(client, bus):
    bus.problem = Unavailable("broker not connected")

    old = client.post("/soap/gr-in", data=envelope("1.1", receipt()), headers=SOAP11_HEADERS)
    new = client.post("/soap/gr-in", data=envelope("1.2", receipt()), headers=SOAP12_HEADERS)

    assert old.status_code == 500 and fault_of(old)["code"] == "Server" and old.headers["Retry-After"] == "5"
    assert new.status_code == 500 and fault_of(new)["code"] == "Receiver"
    assert "try again" in fault_of(old)["reason"]


def test_another_operations_request_is_refused_naming_the_expected_one(client):
    other = element("GetOpenPurchaseOrders", Warehouse="WH1")
    headers = {**SOAP11_HEADERS, "SOAPAction": '""'}

    fault = fault_of(client.post("/soap/gr-in", data=envelope("1.1", other), headers=headers))

    assert fault["code"] == "Client" and "accepts PostGoodsReceipt" in fault["reason"]


@pytest.mark.parametrize(("headers", "status", "reason"), [
    ({"Content-Type": "text/xml", "X-API-Key": KEY}, 500, "needs a SOAPAction"),
    ({**SOAP11_HEADERS, "SOAPAction": "urn:example:erp:Other"}, 500, "is not this endpoint's"),
    ({**SOAP11_HEADERS, "Content-Type": "application/json"}, 415, "is not SOAP"),
])
def test_the_content_type_and_soap_action_are_checked(client, bus, headers, status, reason):
    response = client.post("/soap/gr-in", data=envelope("1.1", receipt()), headers=headers)

    assert response.status_code == status and reason in fault_of(response)["reason"]
    assert bus.received == []


def test_a_soap12_envelope_sent_as_text_xml_is_a_version_mismatch(client):
    fault = fault_of(client.post("/soap/gr-in", data=envelope("1.2", receipt()), headers=SOAP11_HEADERS))

    assert fault["code"] == "VersionMismatch"


def test_a_header_marked_must_understand_that_the_bus_does_not_know_is_refused(client):
    header = etree.Element("{urn:acme}Transaction", {f"{{{SOAP11}}}mustUnderstand": "1"})
    response = client.post("/soap/gr-in", data=envelope("1.1", receipt(), header), headers=SOAP11_HEADERS)

    fault = fault_of(response)

    assert fault["code"] == "MustUnderstand" and "Transaction" in fault["reason"]


def test_a_body_over_the_limit_is_refused_with_413(bus):
    client = mount(bus, max_body_bytes=200).test_client()

    response = client.post("/soap/gr-in", data=envelope("1.1", receipt()), headers=SOAP11_HEADERS)

    assert response.status_code == 413 and "limit of 200 bytes" in fault_of(response)["reason"]


# --- credentials -------------------------------------------------------------------------------------

def test_a_call_without_credentials_is_refused_401_and_one_for_another_route_403(client, bus):
    anonymous = {key: value for key, value in SOAP11_HEADERS.items() if key != "X-API-Key"}

    missing = client.post("/soap/gr-in", data=envelope("1.1", receipt()), headers=anonymous)
    foreign = client.post("/soap/gr-in", data=envelope("1.1", receipt()),
                          headers={**SOAP11_HEADERS, "X-API-Key": "k-other"})

    assert missing.status_code == 401 and fault_of(missing)["code"] == "Client"
    assert foreign.status_code == 403 and '"shop" may not call route "gr-in"' in fault_of(foreign)["reason"]
    assert bus.received == []


def test_the_key_may_come_as_http_basic_password_or_ws_security_password(client):
    anonymous = {key: value for key, value in SOAP11_HEADERS.items() if key != "X-API-Key"}
    basic = {**anonymous, "Authorization": "Basic " + base64.b64encode(f"wms:{KEY}".encode()).decode()}
    wsse = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
    security = etree.Element(f"{{{wsse}}}Security")
    token = etree.SubElement(security, f"{{{wsse}}}UsernameToken")
    etree.SubElement(token, f"{{{wsse}}}Username").text = "wms"
    etree.SubElement(token, f"{{{wsse}}}Password").text = KEY

    by_basic = client.post("/soap/gr-in", data=envelope("1.1", receipt()), headers=basic)
    by_token = client.post("/soap/gr-in", data=envelope("1.1", receipt(), security), headers=anonymous)

    assert by_basic.status_code == 200 and by_token.status_code == 200


# --- hostile XML --------------------------------------------------------------------------------------

def test_an_xxe_request_gets_a_fault_and_no_file_is_read(client, bus):
    evil = (b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
            b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            b'<PostGoodsReceipt xmlns="urn:example:erp"><ReceiptNumber>&secret;</ReceiptNumber>'
            b"</PostGoodsReceipt></s:Body></s:Envelope>")

    response = client.post("/soap/gr-in", data=evil, headers=SOAP11_HEADERS)

    assert response.status_code == 500 and "DOCTYPE is refused" in fault_of(response)["reason"]
    assert b"root:" not in response.data and bus.received == []


def test_a_billion_laughs_request_gets_a_fault_and_nothing_is_expanded(client, bus):
    entities = "".join(f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, 10))
    evil = (f'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY l0 "lol">{entities}]>'
            '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            '<PostGoodsReceipt xmlns="urn:example:erp"><ReceiptNumber>&l9;</ReceiptNumber>'
            "</PostGoodsReceipt></s:Body></s:Envelope>").encode()

    response = client.post("/soap/gr-in", data=evil, headers=SOAP11_HEADERS)

    assert response.status_code == 500 and fault_of(response)["code"] == "Client"
    assert len(response.data) < 2000 and bus.received == []


def test_malformed_xml_gets_a_fault_with_its_line_and_column(client):
    response = client.post("/soap/gr-in", data=b"<s:Envelope xmlns:s='x'><oops></s:Envelope>",
                           headers=SOAP11_HEADERS)

    assert "malformed XML at line 1" in fault_of(response)["reason"]

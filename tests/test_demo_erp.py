"""The simulated ERP's SOAP service (esb/demo/erp.wsdl) as a strict SOAP stack: it answers the bus's
own SOAP adapter, refuses what does not match its WSDL with a Client fault, wants its credentials,
and answers a change log from a watermark."""

from __future__ import annotations

import pytest
import requests
from lxml import etree

from adapters.soap import SoapSink
from esb.demo.erp import WSDL_PATH, SimulatedErp
from esb.envelope import Envelope
from esb.errors import Permanent
from esb.routes import Endpoint

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"


@pytest.fixture
def erp():
    service = SimulatedErp(check_auth=lambda headers: True, soap_user="esb", soap_password="secret").start()
    yield service
    service.stop()


def sink(erp, password: str = "secret") -> SoapSink:
    system = {"wsdl": str(WSDL_PATH), "endpoint_url": erp.soap_url, "username": "esb", "password": password,
              "timeout": 5.0}
    endpoint = Endpoint("soap", {"system": "erp", "operation": "PostGoodsReceipt", "params": {}})
    return SoapSink(endpoint, system)


RECEIPT = (b'{"ReceiptNumber": "GR-1", "Plant": "%s", "PostingDate": "2026-11-30", '
           b'"ReceivedAt": "2026-11-30T14:05:33+08:00", "Item": [{"ItemNo": 1, "Material": "12345", '
           b'"Quantity": 12, "Unit": "KAR", "StockType": "UNRESTRICTED", "MovementType": "101"}]}')


def test_a_goods_receipt_is_posted_once_per_message_id(erp):
    poster = sink(erp)
    envelope = Envelope(type="goods_receipt", payload={}, source="wms")
    try:
        for _ in range(2):
            poster.deliver(envelope, RECEIPT % b"1000", "application/json")
    finally:
        poster.close()

    documents = [call.answered_id for call in erp.calls]
    assert len(documents) == 2 and documents[0] == documents[1]  # a redelivery posts no second document
    assert {call.message_id for call in erp.calls} == {envelope.id}  # the Idempotency-Key header


def test_a_receipt_for_an_unknown_plant_is_a_client_fault_so_it_is_not_retried(erp):
    poster = sink(erp)
    try:
        with pytest.raises(Permanent, match="plant 9000 does not exist"):
            poster.deliver(Envelope(type="goods_receipt", payload={}, source="wms"), RECEIPT % b"9000",
                           "application/json")
    finally:
        poster.close()


def test_wrong_credentials_are_refused_before_anything_is_posted(erp):
    poster = sink(erp, password="wrong")
    try:
        with pytest.raises(Permanent, match="401"):
            poster.deliver(Envelope(type="goods_receipt", payload={}, source="wms"), RECEIPT % b"1000",
                           "application/json")
    finally:
        poster.close()
    assert [call.status for call in erp.calls] == [401]


def test_a_request_the_wsdl_does_not_allow_is_answered_with_a_client_fault(erp):
    body = (f'<s:Envelope xmlns:s="{SOAP11}"><s:Body><GetBookStock xmlns="urn:esb:demo:erp">'
            '<Warehouse>1000</Warehouse></GetBookStock></s:Body></s:Envelope>')

    answer = requests.post(erp.soap_url, data=body, auth=("esb", "secret"), timeout=5, headers={
        "Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:esb:demo:erp:GetBookStock"'})

    assert answer.status_code == 500
    assert b"<faultcode>soap:Client</faultcode>" in answer.content and b"invalid request" in answer.content


def test_purchase_order_changes_are_answered_from_the_watermark_on(erp):
    for revision, changed in ((0, "2026-11-24T09:00:00+08:00"), (1, "2026-11-24T10:00:00+08:00")):
        erp.publish_purchase_order({"OrderNumber": "4500000001", "Revision": revision, "Status": "OPEN",
                                    "ChangedAt": changed, "Plant": "1000", "Vendor": {"Id": "1"},
                                    "OrderDate": "2026-11-24", "Item": [{"ItemNo": "00010", "Material": "A",
                                                                         "Quantity": 1, "Unit": "ST"}]})
    body = (f'<s:Envelope xmlns:s="{SOAP11}"><s:Body><GetPurchaseOrderChanges xmlns="urn:esb:demo:erp">'
            "<ChangedSince>2026-11-24T02:00:00Z</ChangedSince></GetPurchaseOrderChanges></s:Body></s:Envelope>")

    answer = requests.post(erp.soap_url, data=body, auth=("esb", "secret"), timeout=5, headers={
        "Content-Type": "text/xml; charset=utf-8", "SOAPAction": "urn:esb:demo:erp:GetPurchaseOrderChanges"})

    revisions = etree.fromstring(answer.content).iter("{urn:esb:demo:erp}Revision")
    assert answer.status_code == 200
    assert [node.text for node in revisions] == ["1"]  # 09:00+08:00 is before 02:00Z; 10:00+08:00 is not
    assert erp.asked_since == ["2026-11-24T02:00:00Z"]

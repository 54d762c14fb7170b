"""A SOAP envelope holds exactly one Body, and the Body exactly one element, the call: anything
else is a Client fault, never a part silently dropped."""

from __future__ import annotations

from lxml import etree

from tests.hostile.conftest import SOAP11, soap_call


def fault_string(response) -> str:
    return etree.fromstring(response.content).findtext(f".//{{{SOAP11}}}Fault/faultstring")


def test_an_envelope_with_two_bodies_is_a_client_fault(hostile_bus):
    response = hostile_bus.post("erp-receipts-soap", soap_call(bodies=2), "text/xml; charset=utf-8")
    assert response.status_code == 500  # SOAP 1.1 sends every fault as HTTP 500
    assert etree.fromstring(response.content).findtext(f".//{{{SOAP11}}}Fault/faultcode").endswith("Client")
    assert fault_string(response) == "a SOAP envelope holds exactly one Body, this one holds 2"


def test_a_body_with_a_second_element_beside_the_call_is_a_client_fault(hostile_bus):
    call = soap_call()
    start, end = call.index(b"<s:Body>") + len(b"<s:Body>"), call.index(b"</s:Body>")
    twice = call[:end] + call[start:end] + call[end:]
    response = hostile_bus.post("erp-receipts-soap", twice, "text/xml; charset=utf-8")
    assert "holds 2 elements" in fault_string(response)


def test_an_envelope_with_one_body_is_accepted(hostile_bus):
    response = hostile_bus.post("erp-receipts-soap", soap_call(), "text/xml; charset=utf-8")
    assert response.status_code == 200, response.text

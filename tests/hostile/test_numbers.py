"""Absurd numbers at every inbound endpoint (JSON, IDoc XML, SOAP) are refused with a 422 (a SOAP
Client fault) naming the field and the bound: never a 500, never accepted."""

from __future__ import annotations

import json
import re

import pytest

from tests.hostile.conftest import idoc, shipment, soap_call

HUGE = [
    ("1e400", "at most 28 digits"),
    ("-1e400", "at most 28 digits"),
    ("1e999999999", "at most 28 digits"),
    ('"123456789012345678901234567890"', "at most 28 digits"),
    ("1e-400", "at most 28 digits"),
    ("9" * 4000, "at most 28 digits"),
    ("0." + "1" * 5000, "at most 28 digits"),
    ("12345678901", "<= 9999999999.999"),
    ("1.0005", "at most 3 decimal places"),
]


def problem_of(response, field: str) -> str:
    problems = response.json()["problems"]
    return next(p["expected"] for p in problems if p["path"] == field)


@pytest.mark.parametrize(("quantity", "bound"), HUGE, ids=lambda value: value[:16])
def test_an_absurd_json_quantity_is_a_422_naming_the_field_and_the_bound(hostile_bus, quantity, bound):
    response = hostile_bus.post("wms-shipments-to-erp", shipment(quantity), "application/json")
    assert response.status_code == 422, response.text
    assert bound in problem_of(response, "lines[0].quantity_shipped")


def test_a_30_digit_json_line_number_is_a_422_naming_the_bound(hostile_bus):
    response = hostile_bus.post("wms-shipments-to-erp", shipment("20", "1" * 30), "application/json")
    assert response.status_code == 422, response.text
    assert problem_of(response, "lines[0].line_number") == "an integer <= 999999"


@pytest.mark.parametrize(("quantity", "bound"), [(q.strip('"'), b) for q, b in HUGE
                                                 if re.fullmatch(r'"?[0-9.]+"?', q)],  # MENGE is digits
                         ids=lambda value: value[:16])
def test_an_absurd_idoc_menge_is_a_422_naming_the_field_and_the_bound(hostile_bus, quantity, bound):
    response = hostile_bus.post("erp-po-to-wms", idoc(quantity=quantity), "application/xml")
    assert response.status_code == 422, response.text
    assert bound in problem_of(response, "lines[0].quantity")


def test_a_30_digit_idoc_posex_is_a_422(hostile_bus):
    response = hostile_bus.post("erp-po-to-wms", idoc(position="1" * 30), "application/xml")
    assert response.status_code == 422, response.text
    assert "28 digits" in problem_of(response, "lines[0].line_number")


@pytest.mark.parametrize("quantity", ["123456789012345678901234567890", "9" * 4000, "0." + "1" * 5000])
def test_an_absurd_soap_quantity_is_a_client_fault_naming_the_bound(hostile_bus, quantity):
    response = hostile_bus.post("erp-receipts-soap", soap_call(quantity=quantity), "text/xml; charset=utf-8")
    assert response.status_code == 500, response.text  # SOAP 1.1: a fault travels as HTTP 500
    assert b"Client" in response.content and b"Server" not in response.content
    assert b"lines[0].quantity" in response.content and b"28 digits" in response.content


def test_a_sane_quantity_is_still_accepted_everywhere(hostile_bus):
    largest = hostile_bus.post("wms-shipments-to-erp", shipment("9999999999.999"), "application/json")
    assert largest.status_code == 202, largest.text
    assert hostile_bus.post("erp-po-to-wms", idoc("0.001"), "application/xml").status_code == 202
    soap = hostile_bus.post("erp-receipts-soap", soap_call(), "text/xml; charset=utf-8")
    assert soap.status_code == 200, soap.text


def test_the_json_decoder_answers_an_exponent_beyond_decimal_as_malformed_json(hostile_bus):
    body = json.dumps({"event": "x"}).replace("}", ', "n": 1e99999999999999999999}').encode()
    response = hostile_bus.post("wms-shipments-to-erp", body, "application/json")
    assert response.status_code == 400, response.text
    assert "number out of range" in response.json()["message"]


def test_rounding_a_28_digit_number_to_3_decimals_is_a_conversion_error_not_invalid_operation():
    from decimal import Decimal

    from esb.conversions import ConversionError
    from esb.mapping.nodes import rounding

    with pytest.raises(ConversionError, match="at most 25 digits before the point"):
        rounding(3, as_text=False)(Decimal("9" * 28), None)

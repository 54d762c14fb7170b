"""Control characters (NUL, other C0 and C1 codes) inside business identifiers are refused by the
canonical identifier pattern (`schemas/common.v1.json#/$defs/identifier`): a 422 naming the field."""

from __future__ import annotations

import json

import pytest

from tests.hostile.conftest import idoc, shipment, unique

CONTROLS = ["\u0000", "\u0001", "\u0008", "\t", "\n", "\u001b", "\u001f", "\u007f", "\u0085"]


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
def test_a_control_character_inside_a_json_shipment_number_is_a_422(hostile_bus, control):
    document = json.loads(shipment())
    document["data"]["shipmentId"] = f"SHP-{control}{unique('')}"
    response = hostile_bus.post("wms-shipments-to-erp", json.dumps(document), "application/json")
    assert response.status_code == 422, response.text
    problem = next(p for p in response.json()["problems"] if p["path"] == "shipment_number")
    assert "no control characters" in problem["expected"]


def test_a_tab_inside_an_idoc_order_number_is_a_422(hostile_bus):
    body = idoc().replace(b"<BELNR>45", b"<BELNR>45\t", 1)
    response = hostile_bus.post("erp-po-to-wms", body, "application/xml")
    assert response.status_code == 422, response.text
    assert [p["path"] for p in response.json()["problems"]] == ["order_number"]


def test_identifiers_in_any_script_with_inner_spaces_are_still_accepted(hostile_bus):
    document = json.loads(shipment())
    document["data"]["shipmentId"] = f"发货单 {unique('')}"
    response = hostile_bus.post("wms-shipments-to-erp", json.dumps(document), "application/json")
    assert response.status_code == 202, response.text

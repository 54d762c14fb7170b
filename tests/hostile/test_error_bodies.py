"""Answers to external senders never show where the server keeps its files: a 422 names the
mapping relative to the routes file (`mappings/wms/shipment_confirmation.in`)."""

from __future__ import annotations

import json

from esb.mapping.loader import mapping_name
from tests.conftest import PROJECT
from tests.hostile.conftest import shipment


def test_a_422_names_the_mapping_without_the_servers_path(hostile_bus):
    document = json.loads(shipment())
    del document["data"]["orderRef"]
    response = hostile_bus.post("wms-shipments-to-erp", json.dumps(document), "application/json")
    assert response.status_code == 422, response.text
    assert response.json()["message"] == "mapping shipment_confirmation.in: 1 field could not be mapped"
    assert str(PROJECT) not in response.text and "/work/" not in response.text


def test_a_mapping_is_named_relative_to_the_routes_file():
    routes = str(PROJECT / "routes.yaml")
    mapping = str(PROJECT / "mappings" / "wms" / "shipment_confirmation.in.yaml")
    assert mapping_name(mapping, routes) == "mappings/wms/shipment_confirmation.in"
    assert mapping_name("/elsewhere/order.in.yaml", routes) == "order.in"

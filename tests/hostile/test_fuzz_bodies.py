"""Generated hostile bodies (hypothesis) at every inbound endpoint, over real HTTP: whatever comes,
the answer is a 2xx or a 4xx (for SOAP 1.1, a Client fault), never a 5xx, and the bus stays
healthy. Bounded and repeatable: `derandomize=True`, no example database; `bench/hostile` runs
the same strategies with long counts."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from tests.hostile.conftest import shipment
from tests.hostile.strategies import is_refused_well, json_bodies, soap_bodies, xml_bodies

BOUNDED = settings(max_examples=60, derandomize=True, database=None, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.function_scoped_fixture])


@BOUNDED
@given(body=json_bodies())
def test_generated_json_is_never_a_5xx(hostile_bus, body):
    response = hostile_bus.post("wms-shipments-to-erp", body, "application/json")
    assert is_refused_well(response) or response.status_code in (200, 202), response.text


@BOUNDED
@given(body=xml_bodies())
def test_generated_idoc_xml_is_never_a_5xx(hostile_bus, body):
    response = hostile_bus.post("erp-po-to-wms", body, "application/xml")
    assert is_refused_well(response) or response.status_code in (200, 202), response.text


@BOUNDED
@given(body=soap_bodies())
def test_generated_soap_calls_are_never_a_server_fault(hostile_bus, body):
    response = hostile_bus.post("erp-receipts-soap", body, "text/xml; charset=utf-8")
    assert is_refused_well(response) or response.status_code == 200, response.text


def test_after_the_generated_bodies_the_bus_is_healthy_and_accepts_a_valid_post(hostile_bus):
    assert hostile_bus.healthy()
    assert hostile_bus.post("wms-shipments-to-erp", shipment(), "application/json").status_code == 202

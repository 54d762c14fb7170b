"""Deeply nested input (JSON arrays and objects, XML elements) is a 400 naming the depth limit
(default 64, the codecs' `max_depth`), never a RecursionError answered 500."""

from __future__ import annotations

import json

import pytest

from esb import codecs
from esb.errors import DecodeError
from tests.hostile.conftest import idoc, shipment, soap_call


def with_deep_extra_field(depth: int) -> bytes:
    """The valid shipment confirmation carrying one extra field nested `depth` arrays deep."""
    text = shipment().decode().rstrip().removesuffix("}")
    return (text + ', "extra": ' + "[" * depth + "]" * depth + "}").encode()


@pytest.mark.parametrize("depth", [65, 1_000, 100_000])
def test_deep_json_is_a_400_naming_the_limit(hostile_bus, depth):
    response = hostile_bus.post("wms-shipments-to-erp", with_deep_extra_field(depth), "application/json")
    assert response.status_code == 400, response.text
    assert "nested deeper than 64 levels" in response.json()["message"]
    assert hostile_bus.healthy()


def test_json_at_the_limit_is_still_read(hostile_bus):
    response = hostile_bus.post("wms-shipments-to-erp", with_deep_extra_field(60), "application/json")
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("depth", [65, 300, 10_000])
def test_deep_xml_is_a_400_naming_the_limit(hostile_bus, depth):
    deep = "<X>" * depth + "</X>" * depth
    body = idoc().replace(b"</E1EDK01>", deep.encode() + b"</E1EDK01>", 1)
    response = hostile_bus.post("erp-po-to-wms", body, "application/xml")
    assert response.status_code == 400, response.text
    assert "deeper than" in response.json()["message"]


def test_a_deep_soap_envelope_is_a_client_fault_naming_the_limit(hostile_bus):
    deep = "<X>" * 100 + "</X>" * 100
    body = soap_call().replace(b"</e:Sku>", b"</e:Sku>" + deep.encode(), 1)
    response = hostile_bus.post("erp-receipts-soap", body, "text/xml; charset=utf-8")
    assert b"Client" in response.content and b"nested deeper than 64 levels" in response.content


def test_the_depth_limit_is_an_option_of_the_json_and_xml_codecs():
    nested = json.dumps({"a": [[[[1]]]]}).encode()  # 5 levels
    assert next(codecs.decode("json", nested, max_depth=5)) == {"a": [[[[1]]]]}
    with pytest.raises(DecodeError, match="nested deeper than 4 levels"):
        next(codecs.decode("json", nested, max_depth=4))
    with pytest.raises(DecodeError, match="deeper than 2 levels"):
        next(codecs.decode("xml", b"<a><b><c/></b></a>", max_depth=2))
    assert next(codecs.decode("xml", b"<a><b><c/></b></a>", max_depth=3)) == {"a": {"b": {"c": None}}}

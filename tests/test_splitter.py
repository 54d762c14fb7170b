"""The route's splitter: one document per warehouse of its lines, checked by `esb check`, and run by
the inbound pipeline before validation (with one business key per part)."""

from __future__ import annotations

import json

import pytest

from esb.config import check_config
from esb.errors import MappingError
from esb.pipeline import InboundPipeline
from esb.retry import RetryPolicy
from esb.routes import Destination, Endpoint, Route
from esb.schemas import default_registry
from esb.splitter import Split, split_document

ORDER = {
    "order_number": "SO-1", "warehouse": "WH1",
    "ship_to": {"name": "Maier", "address": {"lines": ["Hauptstr. 1"], "city": "Berlin", "country": "DE"}},
    "lines": [
        {"line_number": 10, "sku": "A", "quantity": 1, "uom": "EA", "warehouse": "WH2"},
        {"line_number": 20, "sku": "B", "quantity": 2, "uom": "EA"},
        {"line_number": 30, "sku": "C", "quantity": 3, "uom": "EA", "warehouse": "WH2"},
    ],
}


def test_lines_of_two_warehouses_make_two_documents_in_the_order_they_first_appear():
    parts = split_document(ORDER, Split(by="warehouse"))

    assert [value for value, _ in parts] == ["WH2", "WH1"]
    wh2, wh1 = (document for _, document in parts)
    assert wh2["warehouse"] == "WH2" and [line["line_number"] for line in wh2["lines"]] == [10, 30]
    assert wh1["warehouse"] == "WH1" and [line["line_number"] for line in wh1["lines"]] == [20]
    assert all("warehouse" not in line for _, document in parts for line in document["lines"])
    assert wh2["ship_to"] == ORDER["ship_to"] and wh2["ship_to"] is not wh1["ship_to"]


def test_a_line_without_the_field_and_no_header_value_is_refused_naming_the_line():
    order = {**ORDER, "warehouse": None}

    with pytest.raises(MappingError) as refused:
        split_document(order, Split(by="warehouse"))

    assert [p.path for p in refused.value.problems] == ["lines[1].warehouse"]


def test_a_document_without_its_list_is_refused():
    with pytest.raises(MappingError, match="no list items"):
        split_document({"order_number": "X"}, Split(by="warehouse", items="items"))


def route() -> Route:
    return Route(name="so", source=Endpoint("rest", {"system": "erp"}),
                 destinations=(Destination("wms", Endpoint("rest", {"system": "wms"})),),
                 validate="shipment_order", split=Split(by="warehouse"), retry=RetryPolicy())


def test_the_pipeline_splits_before_validating_and_gives_each_part_its_own_business_key():
    pipeline = InboundPipeline(route(), mapping=None, validate=default_registry().validate, source="erp")

    prepared = pipeline.prepare(json.dumps(ORDER).encode())

    assert [m.envelope.payload["warehouse"] for m in prepared] == ["WH2", "WH1"]
    assert [m.envelope.idempotency_key for m in prepared] == [
        "erp:shipment_order:SO-1:0:warehouse=WH2", "erp:shipment_order:SO-1:0:warehouse=WH1"]
    assert {m.envelope.correlation_id for m in prepared} == {"SO-1"}  # one order's life, traced together


ROUTES = """\
version: 1
systems:
  erp: {rest: {base_url: "http://127.0.0.1:1/erp"}}
  wms: {rest: {base_url: "http://127.0.0.1:1/wms"}}
routes:
  - name: so
    from: {rest: {system: erp}}
    validate: shipment_order
    split: {by: %s}
    to:
      - rest: {system: wms, path: /orders}
"""


def test_esb_check_accepts_a_split_by_a_field_of_the_document(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES % "warehouse")

    assert check_config(path, {}) == []


def test_esb_check_names_a_split_field_the_document_does_not_have(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES % "plant")

    problems = check_config(path, {})

    assert [(p.line, p.what.split(";")[0]) for p in problems] == [
        (9, 'routes[0].split.by: "plant" is not a field of the document '
             "(it becomes the header field of each part)")]


def test_esb_check_refuses_a_split_of_a_field_that_is_not_a_list(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text((ROUTES % "warehouse").replace("{by: warehouse}", "{by: warehouse, items: ship_to}"))

    problems = check_config(path, {})

    assert [p.what for p in problems] == [
        'routes[0].split.items: "ship_to" is not a list (its type: not an array)']

"""The canonical schemas themselves: well-formed, documented, their examples valid, and strict
enough to catch the mistakes a mapping makes."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest

from esb import jsonfmt
from esb.errors import ValidationError
from esb.schemas import DEFAULT_DIRECTORY, SchemaRegistry

CANONICAL_TYPES = [
    "item", "purchase_order", "inbound_notice", "goods_receipt", "shipment_order", "shipment_confirmation",
    "inventory_snapshot", "inventory_adjustment", "stock_count", "inventory_discrepancy", "alert",
]

# The "required" column of CANONICAL.md: header fields, and the fields of every line.
REQUIRED = {
    "item": (["sku", "description", "base_uom"], []),
    "purchase_order": (["order_number", "supplier", "warehouse", "order_date", "lines"],
                       ["line_number", "sku", "quantity", "uom"]),
    "inbound_notice": (["notice_number", "warehouse", "expected_arrival", "lines"],
                       ["line_number", "sku", "quantity", "uom"]),
    "goods_receipt": (["receipt_number", "warehouse", "received_at", "lines"],
                      ["line_number", "sku", "quantity", "uom"]),
    "shipment_order": (["order_number", "warehouse", "ship_to", "lines"],
                       ["line_number", "sku", "quantity", "uom"]),
    "shipment_confirmation": (["shipment_number", "order_number", "warehouse", "shipped_at", "lines"],
                              ["line_number", "order_line_number", "sku", "quantity_shipped", "uom"]),
    "inventory_snapshot": (["snapshot_id", "warehouse", "as_of", "source", "lines"],
                           ["sku", "quantity", "uom"]),
    "inventory_adjustment": (["adjustment_number", "warehouse", "occurred_at", "lines"],
                             ["line_number", "sku", "quantity_delta", "uom", "reason_code"]),
    "stock_count": (["count_number", "warehouse", "counted_at", "lines"],
                    ["line_number", "sku", "counted_quantity", "uom"]),
    "inventory_discrepancy": (["warehouse", "as_of", "book_snapshot_id", "shelf_snapshot_id", "accuracy",
                               "lines"],
                              ["sku", "book_quantity", "shelf_quantity", "difference", "uom"]),
    "alert": (["rule", "severity", "subject", "text", "occurred_at"], []),
}

# The first quantity field of each type's lines, and the time or date field of its header.
LINE_QUANTITY = {
    "purchase_order": "quantity", "inbound_notice": "quantity", "goods_receipt": "quantity",
    "shipment_order": "quantity", "shipment_confirmation": "quantity_shipped",
    "inventory_snapshot": "quantity", "stock_count": "counted_quantity",
    "inventory_discrepancy": "book_quantity",
}
HEADER_TIME = {
    "inbound_notice": "expected_arrival", "goods_receipt": "received_at",
    "shipment_confirmation": "shipped_at",
    "inventory_snapshot": "as_of", "inventory_adjustment": "occurred_at", "stock_count": "counted_at",
    "inventory_discrepancy": "as_of", "alert": "occurred_at",
}
TYPES_WITH_LINE_NUMBERS = [t for t in CANONICAL_TYPES if "line_number" in REQUIRED[t][1]]
TYPES_WITH_LINES = [t for t in CANONICAL_TYPES if REQUIRED[t][1]]


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry()


def example(registry: SchemaRegistry, type_name: str) -> dict:
    """The first example of a schema, parsed as the bus parses JSON (numbers with a fraction as Decimal)."""
    return jsonfmt.loads(json.dumps(registry.schema(type_name)["examples"][0]))


def problems_of(registry: SchemaRegistry, type_name: str, payload: dict) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        registry.validate(type_name, payload)
    return {problem.path: problem.expected for problem in caught.value.problems}


def schema_files() -> list[Path]:
    return sorted(DEFAULT_DIRECTORY.glob("*.v*.json"))


# --- the files ------------------------------------------------------------------------------------
def test_there_is_one_schema_per_canonical_type(registry):
    assert registry.types() == sorted(CANONICAL_TYPES)
    assert all(registry.versions(name) == [1] for name in CANONICAL_TYPES)


@pytest.mark.parametrize("path", schema_files(), ids=lambda p: p.name)
def test_every_schema_passes_the_draft_2020_12_metaschema(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://esb.example/schemas/{path.name}"
    assert schema["title"] and schema["description"]


@pytest.mark.parametrize("type_name", CANONICAL_TYPES)
def test_every_schema_example_is_valid(registry, type_name):
    examples = registry.schema(type_name)["examples"]
    assert examples
    for document in examples:
        registry.validate(type_name, document)  # as written (floats)
        registry.validate(type_name, jsonfmt.loads(json.dumps(document)))  # as the bus reads it (Decimals)


def test_the_purchase_order_example_has_ten_lines(registry):
    assert len(registry.schema("purchase_order")["examples"][0]["lines"]) == 10


@pytest.mark.parametrize("type_name", CANONICAL_TYPES)
def test_required_fields_are_those_of_the_canonical_documents(registry, type_name):
    header, line = REQUIRED[type_name]
    assert sorted(registry.schema(type_name)["required"]) == sorted(header)
    if line:
        payload = example(registry, type_name)
        payload["lines"][0] = {}
        found = problems_of(registry, type_name, payload)
        assert {path for path, expected in found.items() if expected == "a required field"} == {
            f"lines[0].{name}" for name in line}


def test_shared_definitions_live_in_common_and_are_referenced(registry):
    text = (DEFAULT_DIRECTORY / "purchase_order.v1.json").read_text(encoding="utf-8")
    assert '"common.v1.json#/$defs/quantity"' in text
    assert '"common.v1.json#/$defs/party"' in text
    assert "common" not in registry.types()


# --- what the schemas refuse -------------------------------------------------------------------
@pytest.mark.parametrize("type_name", CANONICAL_TYPES)
def test_a_missing_required_header_field_is_named(registry, type_name):
    first_required = REQUIRED[type_name][0][0]
    payload = example(registry, type_name)
    del payload[first_required]
    assert problems_of(registry, type_name, payload) == {first_required: "a required field"}


@pytest.mark.parametrize("type_name", TYPES_WITH_LINES)
def test_a_missing_line_field_is_named_with_its_line(registry, type_name):
    payload = example(registry, type_name)
    del payload["lines"][-1]["sku"]
    last = len(payload["lines"]) - 1
    assert problems_of(registry, type_name, payload) == {f"lines[{last}].sku": "a required field"}


@pytest.mark.parametrize("type_name", list(LINE_QUANTITY))
def test_a_negative_quantity_is_refused(registry, type_name):
    payload = example(registry, type_name)
    payload["lines"][0][LINE_QUANTITY[type_name]] = Decimal("-1")
    assert problems_of(registry, type_name, payload) == {
        f"lines[0].{LINE_QUANTITY[type_name]}": "a number >= 0"}


@pytest.mark.parametrize("type_name", list(LINE_QUANTITY))
def test_a_quantity_written_as_a_string_is_refused(registry, type_name):
    payload = example(registry, type_name)
    payload["lines"][0][LINE_QUANTITY[type_name]] = "12.5"
    assert problems_of(registry, type_name, payload) == {f"lines[0].{LINE_QUANTITY[type_name]}": "a number"}


@pytest.mark.parametrize(("type_name", "field"), [("inventory_adjustment", "quantity_delta"),
                                                  ("inventory_discrepancy", "difference")])
def test_a_change_or_a_difference_may_be_negative(registry, type_name, field):
    payload = example(registry, type_name)
    payload["lines"][0][field] = Decimal("-12.5")
    registry.validate(type_name, payload)


@pytest.mark.parametrize("bad_date", ["24.11.2026", "2026-11-24T00:00:00+01:00", "2026-02-30", "2026-1-5"])
def test_a_bad_business_date_is_refused(registry, bad_date):
    payload = example(registry, "purchase_order")
    payload["order_date"] = bad_date
    found = problems_of(registry, "purchase_order", payload)
    assert list(found) == ["order_date"]
    assert "YYYY-MM-DD" in found["order_date"]


@pytest.mark.parametrize("type_name", list(HEADER_TIME))
def test_a_time_without_an_offset_is_refused(registry, type_name):
    payload = example(registry, type_name)
    payload[HEADER_TIME[type_name]] = "2026-11-24T08:30:00"
    found = problems_of(registry, type_name, payload)
    assert list(found) == [HEADER_TIME[type_name]]
    assert "with offset" in found[HEADER_TIME[type_name]]


@pytest.mark.parametrize("good_time", ["2026-11-24T08:30:00+08:00", "2026-11-24T00:30:00Z",
                                       "2026-11-24T08:30:00.123-05:00"])
def test_a_time_with_an_offset_is_accepted(registry, good_time):
    payload = example(registry, "goods_receipt")
    payload["received_at"] = good_time
    registry.validate("goods_receipt", payload)


def test_an_unknown_stock_status_is_refused_with_the_allowed_ones(registry):
    payload = example(registry, "goods_receipt")
    payload["lines"][1]["stock_status"] = "lost"
    assert problems_of(registry, "goods_receipt", payload) == {
        "lines[1].stock_status": "one of available, quarantine, damaged, rejected"}


@pytest.mark.parametrize("type_name", TYPES_WITH_LINE_NUMBERS)
def test_line_number_zero_is_refused(registry, type_name):
    payload = example(registry, type_name)
    payload["lines"][0]["line_number"] = 0
    assert problems_of(registry, type_name, payload) == {"lines[0].line_number": "an integer >= 1"}


@pytest.mark.parametrize("type_name", CANONICAL_TYPES)
def test_an_unknown_header_field_is_refused(registry, type_name):
    payload = example(registry, type_name)
    payload["colour"] = "blue"
    assert problems_of(registry, type_name, payload) == {"colour": "no such field"}


@pytest.mark.parametrize("type_name", TYPES_WITH_LINES)
def test_a_misspelt_line_field_is_refused_with_a_suggestion(registry, type_name):
    payload = example(registry, type_name)
    line = payload["lines"][0]
    line["uomm"] = line.pop("uom")
    assert problems_of(registry, type_name, payload) == {
        "lines[0].uom": "a required field", "lines[0].uomm": 'no such field (did you mean "uom"?)'}


def test_a_uom_must_be_a_rec_20_code(registry):
    payload = example(registry, "purchase_order")
    payload["lines"][0]["uom"] = "pcs"
    assert "UN/ECE" in problems_of(registry, "purchase_order", payload)["lines[0].uom"]


def test_a_purchase_order_without_lines_is_refused(registry):
    payload = example(registry, "purchase_order")
    payload["lines"] = []
    assert problems_of(registry, "purchase_order", payload) == {"lines": "at least 1 item"}


def test_a_supplier_needs_an_id_and_a_ship_to_needs_a_name_and_an_address(registry):
    order = example(registry, "purchase_order")
    del order["supplier"]["id"]
    assert problems_of(registry, "purchase_order", order) == {"supplier.id": "a required field"}
    shipment = example(registry, "shipment_order")
    shipment["ship_to"] = {"name": "Somebody"}
    assert problems_of(registry, "shipment_order", shipment) == {"ship_to.address": "a required field"}


def test_an_empty_warehouse_has_an_empty_snapshot(registry):
    snapshot = example(registry, "inventory_snapshot")
    snapshot["lines"] = []
    registry.validate("inventory_snapshot", snapshot)


def test_a_changed_copy_does_not_change_the_registry(registry):
    schema = registry.schema("item")
    schema["required"].append("colour")
    assert "colour" not in registry.schema("item")["required"]


def test_examples_are_not_shared_between_documents_by_mistake(registry):
    """Each type's example is its own document: validating one as another fails."""
    order = copy.deepcopy(registry.schema("purchase_order")["examples"][0])
    assert not registry.is_valid("goods_receipt", order)


# The business keys the bus reads from each type (CANONICAL.md): document number, revision, time.
DOCUMENT_KEYS = {
    "item": ("sku", None, None),
    "purchase_order": ("order_number", "revision", None),
    "inbound_notice": ("notice_number", None, "shipped_at"),
    "goods_receipt": ("receipt_number", None, "received_at"),
    "shipment_order": ("order_number", "revision", None),
    "shipment_confirmation": ("shipment_number", None, "shipped_at"),
    "inventory_snapshot": ("snapshot_id", None, "as_of"),
    "inventory_adjustment": ("adjustment_number", None, "occurred_at"),
    "stock_count": ("count_number", None, "counted_at"),
    "inventory_discrepancy": (None, None, "as_of"),
    "alert": (None, None, "occurred_at"),
}


@pytest.mark.parametrize("type_name", CANONICAL_TYPES)
def test_each_type_names_its_document_number_revision_and_business_time(registry, type_name):
    keys = registry.document_keys(type_name)

    assert (keys.document_number, keys.revision, keys.occurred_at) == DOCUMENT_KEYS[type_name]
    if keys.document_number:
        assert keys.document_number in registry.schema(type_name)["required"]

"""The schema registry: loading, lookup, Decimal payloads, error reports and bad schema files."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from esb import jsonfmt
from esb.errors import ConfigError, FieldProblem, NotFound, ValidationError
from esb.schemas import (
    DEFAULT_DIRECTORY,
    MAX_GOT_LENGTH,
    DocumentKeys,
    SchemaRegistry,
    default_registry,
    field_path,
    short_repr,
)

COMMON = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://esb.example/schemas/common.v1.json",
    "$defs": {"quantity": {"type": "number", "minimum": 0}},
}


def widget_schema(version: int = 1) -> dict:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://esb.example/schemas/widget.v{version}.json",
        "title": "Widget", "description": "A test type.",
        "type": "object",
        "properties": {"name": {"type": "string"}, "quantity": {"$ref": "common.v1.json#/$defs/quantity"}},
        "required": ["name", "quantity"],
        "additionalProperties": False,
    }


def write(directory: Path, name: str, content: dict | str) -> Path:
    path = directory / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def widget_directory(tmp_path: Path) -> Path:
    write(tmp_path, "common.v1.json", COMMON)
    write(tmp_path, "widget.v1.json", widget_schema(1))
    write(tmp_path, "widget.v2.json", widget_schema(2))
    write(tmp_path, "routes.schema.json", {"type": "object"})  # not a canonical type: left alone
    return tmp_path


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry()


def purchase_order(registry: SchemaRegistry) -> dict:
    return jsonfmt.loads(json.dumps(registry.schema("purchase_order")["examples"][0]))


# --- loading and lookup ---------------------------------------------------------------------------
def test_a_registry_loads_every_versioned_file_of_a_directory(widget_directory):
    registry = SchemaRegistry(widget_directory)
    assert registry.types() == ["widget"]
    assert registry.versions("widget") == [1, 2]
    assert registry.has("widget") and registry.has("widget", 2) and not registry.has("widget", 3)
    assert registry.schema("widget", 2)["$id"].endswith("widget.v2.json")


def test_a_directory_may_be_given_as_text(widget_directory):
    assert SchemaRegistry(str(widget_directory)).types() == ["widget"]


def test_refs_to_the_common_file_resolve_without_the_network(widget_directory):
    registry = SchemaRegistry(widget_directory)
    assert registry.is_valid("widget", {"name": "a", "quantity": 1})
    assert not registry.is_valid("widget", {"name": "a", "quantity": -1})


def test_the_default_registry_reads_the_project_schemas_once():
    assert default_registry() is default_registry()
    assert default_registry().directory == DEFAULT_DIRECTORY
    assert "purchase_order" in default_registry().types()


def test_an_unknown_type_is_not_found_and_suggests_the_closest_name(registry):
    with pytest.raises(NotFound) as caught:
        registry.validate("purchase_ordr", {})
    assert str(caught.value).startswith(
        'unknown canonical type "purchase_ordr" (did you mean "purchase_order"?); known: alert, ')
    for call in (lambda: registry.schema("goods_reciept"), lambda: registry.is_valid("nope", {}),
                 lambda: registry.versions("nope")):
        with pytest.raises(NotFound, match="unknown canonical type"):
            call()


def test_an_unknown_version_is_not_found_and_lists_the_known_ones(registry):
    with pytest.raises(NotFound) as caught:
        registry.validate("purchase_order", {}, version=7)
    assert str(caught.value) == 'unknown schema version of purchase_order "7"; known: 1'
    assert not registry.has("purchase_order", 7)


# --- Decimal payloads -----------------------------------------------------------------------------
def test_decimal_quantities_are_validated_as_numbers(registry):
    order = purchase_order(registry)
    order["lines"][0]["quantity"] = Decimal("0.1") + Decimal("0.2")
    order["lines"][1]["quantity"] = Decimal("0")
    order["lines"][2]["quantity"] = Decimal("9999999999.999")  # the largest SAP QUAN 13,3 holds
    registry.validate("purchase_order", order)


@pytest.mark.parametrize(("amount", "expected"), [
    ("10000000000", "a number <= 9999999999.999"),
    ("123456789012345678901234567890", "a number <= 9999999999.999"),
    ("0.0005", "a number with at most 3 decimal places"),
    ("1E-400", "a number with at most 3 decimal places"),
    ("0." + "1" * 5000, "a number with at most 3 decimal places"),
])
def test_a_quantity_beyond_13_digits_with_3_decimals_is_refused_naming_the_bound(registry, amount, expected):
    order = purchase_order(registry)
    order["lines"][0]["quantity"] = Decimal(amount)
    with pytest.raises(ValidationError) as caught:
        registry.validate("purchase_order", order)
    assert [(p.path, p.expected) for p in caught.value.problems] == [("lines[0].quantity", expected)]


@pytest.mark.parametrize("amount", ["-0.001", "-1", "-9999999999.5"])
def test_a_negative_decimal_quantity_fails_however_small(registry, amount):
    order = purchase_order(registry)
    order["lines"][0]["quantity"] = Decimal(amount)
    with pytest.raises(ValidationError) as caught:
        registry.validate("purchase_order", order)
    assert caught.value.problems == [FieldProblem("lines[0].quantity", "a number >= 0", amount)]


@pytest.mark.parametrize("amount", ["NaN", "Infinity"])
def test_a_decimal_that_is_not_a_finite_number_fails(registry, amount):
    order = purchase_order(registry)
    order["lines"][0]["quantity"] = Decimal(amount)
    assert not registry.is_valid("purchase_order", order)


def test_a_decimal_line_number_with_a_fraction_fails(registry):
    order = purchase_order(registry)
    order["lines"][0]["line_number"] = Decimal("1.5")
    with pytest.raises(ValidationError) as caught:
        registry.validate("purchase_order", order)
    assert caught.value.problems == [FieldProblem("lines[0].line_number", "an integer", "1.5")]


# --- error reports --------------------------------------------------------------------------------
def test_every_problem_is_listed_with_its_path_expectation_and_value(registry):
    order = purchase_order(registry)
    del order["warehouse"]
    order["order_date"] = "24.11.2026"
    order["lines"][3]["quantity"] = Decimal("-2.50")
    order["lines"][7]["line_number"] = 0
    del order["lines"][9]["sku"]
    with pytest.raises(ValidationError) as caught:
        registry.validate("purchase_order", order)
    assert sorted(caught.value.problems, key=lambda p: p.path) == [
        FieldProblem("lines[3].quantity", "a number >= 0", "-2.50"),
        FieldProblem("lines[7].line_number", "an integer >= 1", "0"),
        FieldProblem("lines[9].sku", "a required field", ""),
        FieldProblem("order_date", "a date YYYY-MM-DD, e.g. 2026-11-24", '"24.11.2026"'),
        FieldProblem("warehouse", "a required field", ""),
    ]
    assert caught.value.message == "not a valid purchase_order (schema v1): 5 problems"
    assert caught.value.kind == "validation"


def test_the_error_text_names_each_path(registry):
    order = purchase_order(registry)
    order["lines"][2]["quantity"] = "ten"
    order["lines"][4]["uom"] = "kg"
    with pytest.raises(ValidationError) as caught:
        registry.validate("purchase_order", order)
    text = str(caught.value)
    assert '  - lines[2].quantity: a number (got "ten")' in text
    assert "  - lines[4].uom: a UN/ECE Recommendation 20 unit code" in text


def test_a_value_failing_both_pattern_and_format_is_reported_once(registry):
    order = purchase_order(registry)
    order["order_date"] = "2026-1-5"
    with pytest.raises(ValidationError) as caught:
        registry.validate("purchase_order", order)
    assert [p.path for p in caught.value.problems] == ["order_date"]


def test_a_long_wrong_value_is_cut_short(registry):
    order = purchase_order(registry)
    order["notes"] = {"text": "x" * 500}
    with pytest.raises(ValidationError) as caught:
        registry.validate("purchase_order", order)
    [problem] = caught.value.problems
    assert problem.path == "notes" and problem.expected == "a string"
    assert len(problem.got) == MAX_GOT_LENGTH and problem.got.endswith("…")


def test_a_payload_that_is_not_an_object_is_reported_at_the_document(registry):
    with pytest.raises(ValidationError) as caught:
        registry.validate("item", ["not", "an", "object"])
    assert caught.value.problems == [FieldProblem("", "an object", '["not","an","object"]')]
    assert "(document): an object" in str(caught.value)


def test_field_paths_read_like_python_access():
    assert field_path(["lines", 3, "quantity"]) == "lines[3].quantity"
    assert field_path([]) == ""
    assert field_path(["odd key", 0]) == '["odd key"][0]'


def test_short_repr_writes_decimals_exactly():
    assert short_repr(Decimal("0.30")) == "0.30"
    assert short_repr("x") == '"x"'


# --- bad schema files -----------------------------------------------------------------------------
def test_a_schema_file_that_is_not_json_is_a_config_error_naming_the_file_and_line(widget_directory):
    broken = write(widget_directory, "gadget.v1.json", '{\n  "type": "object",\n  "required": [\n}\n')
    with pytest.raises(ConfigError) as caught:
        SchemaRegistry(widget_directory)
    [problem] = caught.value.problems
    assert problem.file == str(broken) and problem.line == 4
    assert "not valid JSON" in problem.what


def test_a_schema_that_breaks_the_metaschema_is_a_config_error(widget_directory):
    broken = write(widget_directory, "gadget.v1.json", {"type": "objekt", "required": "name"})
    with pytest.raises(ConfigError) as caught:
        SchemaRegistry(widget_directory)
    assert {problem.file for problem in caught.value.problems} == {str(broken)}
    assert len(caught.value.problems) == 2  # both mistakes, not just the first
    assert all("not a valid draft 2020-12 schema" in problem.what for problem in caught.value.problems)
    assert "gadget.v1.json" in str(caught.value)


def test_a_ref_to_a_file_that_is_not_there_is_a_config_error(widget_directory):
    schema = widget_schema(1) | {"$id": "https://esb.example/schemas/gadget.v1.json"}
    schema["properties"]["quantity"] = {"$ref": "units.v1.json#/$defs/quantity"}
    broken = write(widget_directory, "gadget.v1.json", schema)
    with pytest.raises(ConfigError) as caught:
        SchemaRegistry(widget_directory)
    [problem] = caught.value.problems
    assert problem.file == str(broken) and "units.v1.json" in problem.what


def test_an_id_that_does_not_match_the_file_name_is_a_config_error(widget_directory):
    write(widget_directory, "gadget.v1.json", widget_schema(1))  # $id says widget.v1.json
    with pytest.raises(ConfigError, match="does not end with the file name gadget.v1.json"):
        SchemaRegistry(widget_directory)


def test_an_older_draft_is_a_config_error(widget_directory):
    write(widget_directory, "gadget.v1.json", {"$schema": "http://json-schema.org/draft-07/schema#"})
    with pytest.raises(ConfigError, match="must be https://json-schema.org/draft/2020-12/schema"):
        SchemaRegistry(widget_directory)


def test_a_document_key_annotation_naming_a_missing_field_is_a_config_error(widget_directory):
    schema = widget_schema(1) | {"$id": "https://esb.example/schemas/gadget.v1.json",
                                 "x-esb-document-number": "nmae"}
    broken = write(widget_directory, "gadget.v1.json", schema)
    with pytest.raises(ConfigError) as caught:
        SchemaRegistry(widget_directory)
    [problem] = caught.value.problems
    assert problem.file == str(broken)
    assert problem.what == ('"x-esb-document-number" must name a property of the schema, not "nmae" '
                            '(did you mean "name"?)')


def test_document_keys_come_from_the_schema_annotations(widget_directory):
    annotated = widget_schema(2) | {"x-esb-document-number": "name", "x-esb-occurred-at": "quantity"}
    write(widget_directory, "widget.v2.json", annotated)
    registry = SchemaRegistry(widget_directory)

    assert registry.document_keys("widget", 2) == DocumentKeys(document_number="name", occurred_at="quantity")
    assert registry.document_keys("widget", 1) == DocumentKeys()  # no annotations: no keys
    with pytest.raises(NotFound, match="unknown canonical type"):
        registry.document_keys("gizmo")


def test_a_missing_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such schema directory"):
        SchemaRegistry(tmp_path / "nowhere")

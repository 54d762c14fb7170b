"""Every mapping's test cases (STYLE.md #9): discovered next to the mappings and run."""

from __future__ import annotations

from pathlib import Path

import pytest

from esb import jsonfmt
from esb.mapping import load_mapping
from esb.mapping_cases import discover_cases, mappings_without_cases, run_case
from esb.schemas import default_registry

MAPPINGS = Path(__file__).resolve().parent.parent / "mappings"
CASES = discover_cases(MAPPINGS)


def test_every_mapping_ships_with_a_case():
    assert mappings_without_cases(MAPPINGS) == []


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_the_mapping_case_gives_the_expected_result(case):
    result = run_case(case)
    assert result.ok, f"{case.input}: {result.message}"


def _canonical_documents():
    """(case id, canonical type, document): the expected output of "in" cases, the input of "out"."""
    for case in CASES:
        if case.expects_error:
            continue
        mapping = load_mapping(case.mapping)
        path = case.expected if mapping.direction == "in" else case.input
        if path.suffix != ".json":
            continue
        value = jsonfmt.loads(path.read_bytes())
        for index, document in enumerate(value if isinstance(value, list) else [value]):
            yield pytest.param(mapping.canonical_type, document, id=f"{case.id}[{index}]")


@pytest.mark.parametrize(("canonical_type", "document"), list(_canonical_documents()))
def test_the_canonical_side_of_each_case_is_valid_against_its_schema(canonical_type, document):
    default_registry().validate(canonical_type, document)  # raises ValidationError naming the field


def test_a_case_that_differs_reports_each_difference(tmp_path):
    mapping = tmp_path / "x.in.yaml"
    mapping.write_text("direction: in\ncanonical_type: item\ninput: {format: json}\n"
                       "fields: {sku: a, n: {from: n, type: integer}}\n")
    folder = tmp_path / "x.in.cases"
    folder.mkdir()
    (folder / "one.input.json").write_text('{"a": "A1", "n": "10"}')
    (folder / "one.expected.json").write_text('{"sku": "A2", "n": "10", "base_uom": "EA"}')
    (case,) = discover_cases(tmp_path)
    result = run_case(case)
    assert not result.ok
    assert 'sku: expected "A2", got "A1"' in result.message
    assert 'n: expected "10", got 10' in result.message
    assert 'base_uom: missing (expected "EA")' in result.message

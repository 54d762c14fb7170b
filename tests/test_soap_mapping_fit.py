"""`esb check` refuses a soap destination whose mapping cannot write the operation's input: the
mapping's outline against the WSDL operation's input element."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from adapters.soap.mapping_fit import check_mapping
from esb.config import load_config
from esb.errors import ConfigError
from esb.mapping import load_mapping
from esb.routes import Endpoint
from tests.conftest import PROJECT

ERP_WSDL = PROJECT / "tests" / "data" / "config" / "wsdl" / "erp.wsdl"  # PostGoodsReceipt(ReceiptNumber)


def problems_of(tmp_path: Path, fields: str, *, wsdl: Path = ERP_WSDL, operation: str = "PostGoodsReceipt",
                params: str = "", output: str = "{format: json}") -> list[str]:
    """The problems `esb check` finds in a route whose soap destination maps with these fields."""
    mapping = tmp_path / "request.out.yaml"
    mapping.write_text(f"direction: out\ncanonical_type: goods_receipt\noutput: {output}\nfields:\n"
                       + textwrap.indent(textwrap.dedent(fields).strip(), "  ") + "\n", encoding="utf-8")
    routes = tmp_path / "routes.yaml"
    routes.write_text(textwrap.dedent(f"""
        version: 1
        systems:
          erp: {{soap: {{wsdl: {wsdl}, endpoint_url: "http://erp.test/soap"}}}}
        routes:
          - name: receipts
            from: {{rest: {{format: json}}}}
            to:
              - soap:
                  system: erp
                  operation: {operation}
                  map: {mapping.name}
                  {params}
    """).lstrip(), encoding="utf-8")
    try:
        load_config(routes, {})
    except ConfigError as error:
        return [str(problem) for problem in error.problems]
    return []


def test_a_mapping_that_writes_the_operations_parameters_passes(tmp_path):
    assert problems_of(tmp_path, "ReceiptNumber: receipt_number") == []


def test_an_unknown_parameter_and_a_missing_required_one_are_refused_at_the_map_line(tmp_path):
    problems = problems_of(tmp_path, "Receipt: receipt_number")
    assert len(problems) == 2, problems
    at_the_map_line = f"{tmp_path / 'routes.yaml'}:11: routes[0].to[0].soap.map: mapping "
    assert all(problem.startswith(at_the_map_line) for problem in problems)
    assert 'writes Receipt, which PostGoodsReceipt does not take (did you mean "ReceiptNumber"?); ' \
           "it takes: ReceiptNumber (required)" in problems[0]
    assert "never writes ReceiptNumber, which PostGoodsReceipt requires (minOccurs 1)" in problems[1]


def test_a_required_parameter_given_by_params_need_not_be_mapped(tmp_path):
    assert problems_of(tmp_path, "Note: {value: x, required: false}",
                       params="params: {ReceiptNumber: fixed}") == [
        f"{tmp_path / 'routes.yaml'}:11: routes[0].to[0].soap.map: mapping {tmp_path / 'request.out.yaml'}: "
        "writes Note, which "
        "PostGoodsReceipt does not take; it takes: ReceiptNumber (required)"]
    assert problems_of(tmp_path, "ReceiptNumber: receipt_number", params="params: {ReceiptNumber: x}") == []


def test_xml_output_is_compared_by_the_children_of_its_root_element(tmp_path):
    assert problems_of(tmp_path, "PostGoodsReceipt: {fields: {ReceiptNumber: receipt_number}}",
                       output="{format: xml}") == []
    (problem,) = problems_of(tmp_path, "PostGoodsReceipt: {fields: {Number: receipt_number, "
                                       "ReceiptNumber: receipt_number}}", output="{format: xml}")
    assert "writes Number, which PostGoodsReceipt does not take" in problem


# --- on a real WSDL: a Microsoft Dynamics NAV page service ----------------------------------

def test_nested_lists_and_values_are_compared_with_a_real_wsdl(tmp_path, samples_dir):
    nav = samples_dir / "wsdl" / "nav_page_CustomerList.wsdl.xml"
    good = """
        CustomerList_List:
          fields:
            CustomerList: {each: lines, fields: {"No": sku, Name: description}}
    """
    assert problems_of(tmp_path, good, wsdl=nav, operation="CreateMultiple") == []
    misspelt = good.replace("Name:", "Nmae:")
    (problem,) = problems_of(tmp_path, misspelt, wsdl=nav, operation="CreateMultiple")
    assert "writes CustomerList_List.CustomerList.Nmae, which CustomerList_List.CustomerList of " \
           'CreateMultiple does not take (did you mean "Name"?)' in problem


@pytest.mark.parametrize(("fields", "expected"), [
    ("filter: {each: filters, fields: {Field: field, Criteria: criteria}}",
     "never writes setSize, which ReadMultiple requires (minOccurs 1)"),
    ("filter: {from: filters}\nsetSize: {value: 10}",
     "writes a value at filter, but ReadMultiple takes an element with fields there: Field (required), "
     "Criteria (required)"),
    ("filter: {each: filters, fields: {Field: field, Criteria: criteria}}\nsetSize: {each: sizes, item: '@'}",
     "writes a list at setSize, but ReadMultiple takes one setSize there (maxOccurs 1)"),
    ("filter: {each: filters, fields: {Field: field, Criteria: criteria}}\nsetSize: {fields: {n: size}}",
     "writes an object at setSize, but ReadMultiple takes a value there"),
])
def test_what_a_real_operation_cannot_take_is_refused(tmp_path, samples_dir, fields, expected):
    nav = samples_dir / "wsdl" / "nav_page_CustomerList.wsdl.xml"
    problems = problems_of(tmp_path, fields, wsdl=nav, operation="ReadMultiple")
    assert any(expected in problem for problem in problems), problems


def test_a_parameter_the_mapping_writes_only_sometimes_passes(tmp_path, samples_dir):
    nav = samples_dir / "wsdl" / "nav_page_CustomerList.wsdl.xml"
    fields = "filter: {each: filters, fields: {Field: field, Criteria: criteria}}\n" \
             "setSize: {from: size, required: false}"
    assert problems_of(tmp_path, fields, wsdl=nav, operation="ReadMultiple") == []


def test_the_shipped_goods_receipt_mapping_fits_the_demo_erps_operation(tmp_path):
    shipped = PROJECT / "mappings" / "erp" / "goods_receipt.out.yaml"
    wsdl = PROJECT / "esb" / "demo" / "erp.wsdl"
    outline = load_mapping(shipped).outline()
    endpoint = Endpoint("soap", {"operation": "PostGoodsReceipt", "wsdl": str(wsdl)})
    assert check_mapping(endpoint, None, outline) == []
    broken = tmp_path / "goods_receipt.out.yaml"
    misspelt = shipped.read_text(encoding="utf-8").replace("\n  Plant:", "\n  Plnt:")
    broken.write_text(misspelt, encoding="utf-8")
    problems = check_mapping(endpoint, None, load_mapping(broken).outline())
    expected = 'writes Plnt, which PostGoodsReceipt does not take (did you mean "Plant"?)'
    assert any(expected in problem for problem in problems), problems

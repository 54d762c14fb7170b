"""XML `root:`: an IDoc's basic type and its extension types read by one mapping."""

from __future__ import annotations

import pytest

from esb.codecs import xml
from esb.errors import DecodeError
from esb.mapping import check_mapping, load_mapping
from tests.conftest import PROJECT

PURCHASE_ORDER = PROJECT / "mappings" / "erp" / "purchase_order.in.yaml"


def test_an_extension_type_is_keyed_by_the_basic_type_so_one_mapping_reads_both():
    assert xml.parse(b"<ZORDERS05><IDOC/></ZORDERS05>", root=["ORDERS05", "ZORDERS05"]) == {
        "ORDERS05": {"IDOC": None}}
    assert xml.parse(b"<ORDERS05><IDOC/></ORDERS05>", root="ORDERS05") == {"ORDERS05": {"IDOC": None}}


def test_another_root_element_is_refused_naming_what_the_mapping_reads(samples_dir):
    delivery = (samples_dir / "idoc" / "ballerina_DELVRY03_minimal.xml").read_bytes()
    mapping = load_mapping(PURCHASE_ORDER)
    with pytest.raises(DecodeError, match=r"the root element is <DELVRY03>, but the mapping reads ORDERS05 "
                                          r"or ZORDERS05 \(input.root\)"):
        list(mapping.run(delivery))


def test_without_root_any_element_is_read_under_its_own_name():
    assert xml.parse(b"<DELVRY03/>") == {"DELVRY03": None}


def test_an_out_mapping_writes_the_first_root_name(tmp_path):
    assert xml.encode({"a": "1"}, root=["ORDERS05", "ZORDERS05"], declaration=False, pretty=False) == \
        b"<ORDERS05><a>1</a></ORDERS05>"


@pytest.mark.parametrize("root", ["[]", "[ORDERS05, 5]", "{a: b}"])
def test_a_root_that_is_not_element_names_is_a_problem(tmp_path, root):
    path = tmp_path / "m.in.yaml"
    path.write_text(f"direction: in\ncanonical_type: purchase_order\ninput: {{format: xml, root: {root}}}\n"
                    "fields: {order_number: a}\n")
    (problem,) = check_mapping(path)
    assert "input: root is an element name or a list of them" in str(problem)

"""The reference mappings on real files of other authors (`../shared/samples`): what they take, and
the clear refusal of what they cannot."""

from __future__ import annotations

import pytest

from esb.errors import MappingError
from esb.mapping import load_mapping
from tests.conftest import PROJECT


def test_a_header_only_delvry03_is_refused_naming_what_an_asn_needs(samples_dir):
    mapping = load_mapping(PROJECT / "mappings" / "erp" / "inbound_notice.in.yaml")
    body = (samples_dir / "idoc" / "ballerina_DELVRY03_minimal.xml").read_bytes()

    with pytest.raises(MappingError) as refused:
        list(mapping.run(body))

    # the DELVRY03 root is split like DELVRY07's; the IDoc has a header and no items
    paths = sorted(problem.path for problem in refused.value.problems)
    assert paths == ["expected_arrival", "lines", "warehouse"]


def test_the_delvry03_sample_maps_once_its_items_and_deadline_are_added(samples_dir):
    mapping = load_mapping(PROJECT / "mappings" / "erp" / "inbound_notice.in.yaml")
    body = (samples_dir / "idoc" / "ballerina_DELVRY03_minimal.xml").read_text(encoding="utf-8")
    items = ("<E1EDT13 SEGMENT=\"1\"><QUALF>007</QUALF><NTANF>20261201</NTANF></E1EDT13>"
             "<E1EDL24 SEGMENT=\"1\"><POSNR>000010</POSNR><MATNR>12345</MATNR><WERKS>2000</WERKS>"
             "<LFIMG>82,000</LFIMG><VRKME>KG</VRKME></E1EDL24></E1EDL20>")

    (notice,) = mapping.run(body.replace("</E1EDL20>", items).encode())

    assert notice["notice_number"] == "Avon"  # non-numeric delivery numbers stay as they are
    assert notice["warehouse"] == "WH2" and notice["expected_arrival"] == "2026-12-01T00:00:00+08:00"
    assert notice["lines"] == [{"line_number": 10, "sku": "12345", "quantity": 82, "uom": "KGM"}]

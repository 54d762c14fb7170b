"""`esb map MAPPING INPUT [--validate TYPE]`."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from esb import jsonfmt
from esb.cli import main

PROJECT = Path(__file__).resolve().parent.parent
GOODS_RECEIPT = PROJECT / "mappings" / "wms" / "goods_receipt.in.yaml"
GOODS_RECEIPT_CASES = PROJECT / "mappings" / "wms" / "goods_receipt.in.cases"
INBOUND_ORDER = PROJECT / "mappings" / "wms" / "inbound_order.out.yaml"


def documents_in(text: str) -> list:
    """The JSON documents printed one after another."""
    return jsonfmt.loads("[" + text.replace("}\n{", "},\n{") + "]")


def test_map_prints_each_document_as_json(capsys):
    code = main(["map", str(GOODS_RECEIPT), str(GOODS_RECEIPT_CASES / "two_receipts_gbk.input.csv")])
    out = capsys.readouterr().out
    assert code == 0
    numbers = [document["receipt_number"] for document in documents_in(out)]
    assert numbers == ["GR-2026-000123", "GR-2026-000124"]


def test_map_validates_each_result_when_asked(capsys):
    input_file = str(GOODS_RECEIPT_CASES / "two_receipts_gbk.input.csv")
    assert main(["map", str(GOODS_RECEIPT), input_file, "--validate", "goods_receipt"]) == 0
    capsys.readouterr()
    assert main(["map", str(GOODS_RECEIPT), input_file, "--validate", "purchase_order"]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"esb: {input_file}: not a valid purchase_order") and "Traceback" not in error


def test_map_reads_stdin_and_writes_the_target_format_of_an_out_mapping(capsys, monkeypatch):
    canonical = (PROJECT / "mappings" / "wms" / "inbound_order.out.cases" /
                 "from_orders05_sample.input.json").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(canonical)))
    assert main(["map", str(INBOUND_ORDER), "-"]) == 0
    (document,) = documents_in(capsys.readouterr().out)
    assert document["facility"] == "KS01" and document["lines"][0]["unit"] == "CS"


def test_map_fails_with_one_clear_message_on_bad_input(capsys):
    bad = GOODS_RECEIPT_CASES / "unknown_unit.input.csv"
    assert main(["map", str(GOODS_RECEIPT), str(bad)]) == 1
    captured = capsys.readouterr()
    assert "GR-2026-000123" in captured.out  # the first receipt mapped before the second failed
    assert captured.err.startswith(f"esb: {bad}, document 2: mapping {GOODS_RECEIPT}: 1 field could not")
    assert 'lines[0].uom: a code of table unit_of_wms_unit' in captured.err


def test_map_fails_clearly_on_a_bad_mapping_file_a_missing_input_and_an_unknown_type(capsys, tmp_path):
    mapping = tmp_path / "bad.in.yaml"
    mapping.write_text("direction: in\ncanonical_type: item\ninput: {format: json}\nfields: {sku: 'a[?'}\n")
    assert main(["map", str(mapping), "x.json"]) == 1
    assert f"{mapping}:4: sku: bad JMESPath expression" in capsys.readouterr().err
    assert main(["map", str(GOODS_RECEIPT), str(tmp_path / "missing.csv")]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["map", str(GOODS_RECEIPT), "x.csv", "--validate", "goods_reciept"]) == 1
    assert 'did you mean "goods_receipt"' in capsys.readouterr().err

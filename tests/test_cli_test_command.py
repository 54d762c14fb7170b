"""`esb test` runs the test cases beside every mapping, without a broker."""

from __future__ import annotations

import shutil

from esb.cli import main
from tests.conftest import PROJECT


def test_the_shipped_mappings_pass_their_cases(capsys):
    assert main(["test", str(PROJECT / "mappings")]) == 0
    assert "0 failed" in capsys.readouterr().out


def test_a_case_whose_expectation_differs_fails_and_says_where(tmp_path, capsys):
    shutil.copytree(PROJECT / "mappings" / "wms", tmp_path / "wms")
    expected = tmp_path / "wms" / "goods_receipt.in.cases" / "two_receipts_gbk.expected.json"
    expected.write_text(expected.read_text(encoding="utf-8").replace('"WH1"', '"WH9"', 1), encoding="utf-8")

    assert main(["test", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL wms/goods_receipt.in.yaml :: two_receipts_gbk" in out and "WH9" in out


def test_a_mapping_without_cases_fails(tmp_path, capsys):
    shutil.copy(PROJECT / "mappings" / "wms" / "goods_receipt.in.yaml", tmp_path / "receipts.in.yaml")
    assert main(["test", str(tmp_path)]) == 1
    assert "has no test case" in capsys.readouterr().out

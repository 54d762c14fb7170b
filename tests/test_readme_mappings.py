"""The mapping reference in the README: its example mapping files load, and do what it says."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from esb.mapping import SourceInfo, check_mapping, load_mapping
from tests.conftest import PROJECT


def reference_examples() -> list[str]:
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Mapping reference", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    return [block for block in blocks if block.startswith("direction:")]


@pytest.fixture
def example(tmp_path):
    def load(index: int):
        path = tmp_path / f"example{index}.in.yaml"
        path.write_text(reference_examples()[index], encoding="utf-8")
        assert check_mapping(path) == []
        return load_mapping(path)

    return load


def test_the_reference_has_its_examples():
    assert len(reference_examples()) == 2


def test_the_csv_example_makes_one_snapshot_of_the_whole_file(example):
    mapping = example(0)
    raw = "material;qty\n000A4711;12,5\n0815;3\n".encode("gbk")
    (snapshot,) = mapping.run(raw, SourceInfo(file="stock.csv", received_at="2026-11-30T06:00:00.000+00:00"))
    assert snapshot == {"warehouse": "WH1", "taken_at": "2026-11-30T06:00:00+00:00",
                        "lines": [{"sku": "A4711", "quantity": Decimal("12.5")},
                                  {"sku": "815", "quantity": 3}]}


def test_the_fixed_width_example_groups_receipts_and_counts_the_files_lines(example):
    mapping = example(1)
    header = "HGR00000001" + "20261130140533"
    line = "L" + "000000000000012345" + "000012500"
    short = "L" + "ABC-1".ljust(18) + "1000"  # trailing spaces trimmed by the sender
    raw = "\n".join([header, line, line, "HGR00000002" + "20261201080000", short]).encode("gbk")
    first, second = mapping.run(raw)
    assert first["receipt_number"] == "GR00000001" and first["received_at"] == "2026-11-30T14:05:33+08:00"
    assert first["lines"] == [{"line_number": 2, "sku": "12345", "quantity": Decimal("12.5")},
                              {"line_number": 3, "sku": "12345", "quantity": Decimal("12.5")}]
    assert second["lines"] == [{"line_number": 5, "sku": "ABC-1", "quantity": 1}]

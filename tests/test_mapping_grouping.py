"""How a mapping makes documents of CSV and fixed-width records: per record, per group (sorted or
not), or one document of the whole file."""

from __future__ import annotations

import textwrap

import pytest

from esb.errors import DecodeError
from esb.mapping import check_mapping, load_mapping

UNSORTED = b"receipt,sku\nR1,A\nR2,B\nR1,C\nR3,D\nR2,E\n"


def write(tmp_path, input_block: str, fields: str = "receipt_number: key\nskus: {each: records, item: sku}"):
    path = tmp_path / "m.in.yaml"
    path.write_text(f"direction: in\ncanonical_type: goods_receipt\ninput: {input_block}\nfields:\n"
                    + textwrap.indent(fields, "  ") + "\n", encoding="utf-8")
    return path


def test_per_file_makes_one_document_of_every_record(tmp_path):
    fields = "first: header.sku\ncount: length(records)\nskus: {each: records, item: sku}"
    mapping = load_mapping(write(tmp_path, "{format: csv, per: file}", fields))
    assert list(mapping.run(UNSORTED)) == [{"first": "A", "count": 5, "skus": ["A", "B", "C", "D", "E"]}]
    assert list(mapping.run(b"receipt,sku\n")) == []  # a header alone holds no document


def test_per_file_reads_fixed_width_records_too(tmp_path):
    mapping = load_mapping(write(tmp_path, "{format: fixedwidth, per: file, fields: [{name: sku, start: 1, "
                                           "length: 3}]}", "skus: {each: records, item: sku}"))
    assert list(mapping.run(b"A1 \nB2 \n")) == [{"skus": ["A1", "B2"]}]


def test_group_sorted_false_groups_records_wherever_they_are_in_first_seen_order(tmp_path):
    mapping = load_mapping(write(tmp_path, "{format: csv, group_by: receipt, group_sorted: false}"))
    assert list(mapping.run(UNSORTED)) == [{"receipt_number": "R1", "skus": ["A", "C"]},
                                           {"receipt_number": "R2", "skus": ["B", "E"]},
                                           {"receipt_number": "R3", "skus": ["D"]}]


def test_sorted_grouping_refuses_unsorted_input_and_says_how_to_read_it(tmp_path):
    mapping = load_mapping(write(tmp_path, "{format: csv, group_by: receipt}"))
    with pytest.raises(DecodeError, match="line 4: receipt R1 appears again .* or set group_sorted: false"):
        list(mapping.run(UNSORTED))


def test_unsorted_grouping_still_names_a_record_without_a_key(tmp_path):
    mapping = load_mapping(write(tmp_path, "{format: csv, group_by: receipt, group_sorted: false}"))
    with pytest.raises(DecodeError, match="line 3: receipt is empty"):
        list(mapping.run(b"receipt,sku\nR1,A\n,B\n"))


@pytest.mark.parametrize(("input_block", "problem"), [
    ("{format: csv, per: page}", 'input.per: unknown value "page"'),
    ("{format: csv, per: group}", "per: group needs group_by"),
    ("{format: csv, per: file, group_by: receipt}", "group_by makes one document per group, per: file one "
                                                    "per file: use one"),
    ("{format: csv, group_sorted: false}", "group_sorted applies to group_by"),
    ("{format: csv, group_by: receipt, group_sorted: maybe}", "group_sorted must be true or false"),
    ("{format: json, per: file}", "input.per: the records of csv and fixedwidth make documents; json is read "
                                  "whole"),
])
def test_grouping_options_that_do_not_fit_are_problems(tmp_path, input_block, problem):
    problems = [str(found) for found in check_mapping(write(tmp_path, input_block))]
    assert any(problem in found for found in problems), problems

"""The expression functions a mapping adds to JMESPath's own, and how a field meets null."""

from __future__ import annotations

import textwrap
from decimal import Decimal

import pytest

from esb.errors import ConfigError, MappingError
from esb.mapping import check_mapping, load_mapping


@pytest.fixture
def mapping_of(tmp_path):
    """A JSON "in" mapping with these fields (YAML), loaded."""

    def load(fields: str, extra: str = ""):
        path = tmp_path / "m.in.yaml"
        head = "direction: in\ncanonical_type: purchase_order\ninput: {format: json}\n"
        head += textwrap.dedent(extra)
        path.write_text(head + "fields:\n" + textwrap.indent(textwrap.dedent(fields), "  "), encoding="utf-8")
        return load_mapping(path)

    return load


def value_of(mapping_of, expression: str, document: dict) -> object:
    mapping = mapping_of(f"out: {{from: {expression!r}, required: false}}")
    return mapping.apply(document).get("out")


@pytest.mark.parametrize(("expression", "expected"), [
    ("substring(code, `0`, `3`)", "ABC"),
    ("substring(code, `3`)", "DEF123"),
    ("substring(code, `-3`)", "123"),
    ("substring(code, `-3`, `2`)", "12"),
    ("substring(code, `20`, `2`)", None),          # nothing left: empty, so the field is left out
    ("substring(number, `0`, `2`)", "45"),         # a number is read as its text
    ("pad_left(short, `6`, '0')", "000042"),
    ("pad_left(short, `6`)", "    42"),
    ("pad_right(short, `5`, '*')", "42***"),
    ("pad_left(code, `3`, '0')", "ABCDEF123"),     # longer text is kept whole
    ("regex_replace(phone, '[^0-9+]', '')", "+8621555123"),
    ("regex_replace(date, '(\\d{2})\\.(\\d{2})\\.(\\d{4})', '\\3-\\2-\\1')", "2026-11-30"),
    ("strip_zeros(material)", "A4711"),
    ("strip_zeros(zeros)", "0"),
    ("strip_zeros(number)", "4567"),
])
def test_text_functions(mapping_of, expression, expected):
    document = {"code": "ABCDEF123", "number": 4567, "short": "42", "phone": "+86 (21) 555-123",
                "date": "30.11.2026", "material": "000A4711", "zeros": "0000"}
    assert value_of(mapping_of, expression, document) == expected


def test_matches_finds_a_pattern_and_is_false_for_null(mapping_of):
    mapping = mapping_of("""
        numeric: {from: "matches(sku, '^[0-9]+$')", type: boolean}
        has_dash: {from: "matches(sku, '-')", type: boolean}
        missing: {from: "matches(nothing, '.')", type: boolean}
        gtin: {from: sku, when: "matches(sku, '^\\\\d{8}$')"}
    """)
    assert mapping.apply({"sku": "12345678"}) == {"numeric": True, "has_dash": False, "missing": False,
                                                   "gtin": "12345678"}
    assert mapping.apply({"sku": "AB-1"}) == {"numeric": False, "has_dash": True, "missing": False}


def test_text_functions_give_null_for_null_so_an_optional_field_is_left_out(mapping_of):
    mapping = mapping_of("""
        a: {from: "substring(missing, `0`, `2`)", required: false}
        b: {from: "pad_left(missing, `4`, '0')", required: false}
        c: {from: "regex_replace(missing, 'x', 'y')", required: false}
        d: {from: "strip_zeros(missing)", required: false}
        kept: {value: here}
    """)
    assert mapping.apply({}) == {"kept": "here"}


def test_concat_keeps_the_spaces_it_is_given_and_reads_null_as_nothing(mapping_of):
    mapping = mapping_of("""
        name: "concat(first, ' ', last)"
        label: "concat(code, ' - ', missing, '|', qty)"
    """)
    assert mapping.apply({"first": "Li", "last": "Wei", "code": "A1", "qty": Decimal("2.50")}) == {
        "name": "Li Wei", "label": "A1 - |2.50"}


def test_an_optional_field_whose_expression_meets_null_is_left_out(mapping_of):
    mapping = mapping_of("""
        notes: {from: "join('; ', remarks)", required: false}
        count: {from: "length(serials)", required: false}
        first: {from: "starts_with(code, 'X')", required: false}
        tags: {required: false, each: "sort(tags)", item: "@"}
        fallback: {from: "join('; ', remarks)", default: none}
        prefixed: {from: code, when: "starts_with(code, 'X')"}
        order_number: number
    """)
    assert mapping.apply({"number": "PO1"}) == {"order_number": "PO1", "fallback": "none"}
    full = mapping.apply({"number": "PO1", "remarks": ["a", "b"], "serials": ["S1"], "code": "X1",
                          "tags": ["b", "a"]})
    assert full == {"notes": "a; b", "count": 1, "first": True, "tags": ["a", "b"], "fallback": "a; b",
                    "prefixed": "X1", "order_number": "PO1"}


def test_a_required_field_whose_expression_meets_null_is_an_error_naming_the_expression(mapping_of):
    mapping = mapping_of("notes: \"join('; ', remarks)\"")
    with pytest.raises(MappingError, match=r"notes: expression \"join\('; ', remarks\)\" to work .*null"):
        mapping.apply({})


def test_a_function_given_the_wrong_kind_of_value_is_an_error_even_when_optional(mapping_of):
    mapping = mapping_of("n: {from: \"join('; ', remarks)\", required: false}")
    with pytest.raises(MappingError, match="n: expression"):
        mapping.apply({"remarks": "not a list"})


def test_unknown_functions_wrong_arity_and_bad_patterns_are_problems_at_their_line(tmp_path):
    path = tmp_path / "m.in.yaml"
    path.write_text(textwrap.dedent("""
        direction: in
        canonical_type: purchase_order
        input: {format: json}
        fields:
          a: "substr(code, `0`, `2`)"
          b: "pad_left(code)"
          c: "matches(code, '([a-z')"
          d: "upper(code, code)"
          ok: "substring(code, `1`)"
    """).lstrip(), encoding="utf-8")
    problems = [str(problem) for problem in check_mapping(path)]
    assert len(problems) == 4, problems
    assert problems[0].startswith(f"{path}:5: a: ")
    assert 'unknown function "substr()" (did you mean "substring()"?' in problems[0]
    assert "pad_left() takes 2 to 3 arguments, not 1" in problems[1]
    assert "matches(): bad regular expression '([a-z'" in problems[2]
    assert "upper() takes 1 argument, not 2" in problems[3]
    with pytest.raises(ConfigError):
        load_mapping(path)


def test_bad_arguments_at_run_time_name_the_function(mapping_of):
    mapping = mapping_of("""
        a: "pad_left(code, `4`, 'ab')"
        b: "substring(code, `1.5`)"
    """)
    with pytest.raises(MappingError) as caught:
        mapping.apply({"code": "x"})
    message = str(caught.value)
    assert "pad_left: the pad is one character, not 'ab'" in message
    assert "substring: start must be a whole number, not 1.5" in message

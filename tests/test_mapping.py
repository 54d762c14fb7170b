"""The mapping engine: fields, conversions, tables, conditions, grouping, errors and checks."""

from __future__ import annotations

import os
import textwrap
import timeit
from decimal import Decimal
from pathlib import Path

import pytest

from esb import jsonfmt
from esb.errors import ConfigError, DecodeError, MappingError
from esb.mapping import check_mapping, load_mapping

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture
def write_mapping(tmp_path):
    """Write a mapping file (dedented YAML) and return its path."""

    def write(text: str, name: str = "m.in.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write


def json_mapping(write_mapping, fields: str, extra: str = ""):
    head = "direction: in\ncanonical_type: purchase_order\ninput: {format: json}\n" + textwrap.dedent(extra)
    return load_mapping(write_mapping(head + "fields:\n" + textwrap.indent(textwrap.dedent(fields), "  ")))


# --- errors name the mapping file, the target field and the source -------------------------

def test_a_missing_source_for_a_required_field_names_the_file_the_target_and_the_source(write_mapping):
    mapping = json_mapping(write_mapping, """
        order_number: header.number
        lines: {each: items, fields: {sku: {from: material}}}
    """)
    with pytest.raises(MappingError) as caught:
        mapping.apply({"header": {"no": "1"}, "items": [{"material": "A"}, {"matnr": "B"}]})
    message = str(caught.value)
    assert str(mapping.path) in message
    assert "order_number: a value (the field is required) (got nothing at header.number)" in message
    assert "lines[1].sku: a value (the field is required) (got nothing at material)" in message


def test_a_bad_value_names_the_target_the_value_the_source_and_the_csv_line(write_mapping):
    mapping = load_mapping(write_mapping("""
        direction: in
        canonical_type: goods_receipt
        input: {format: csv, group_by: receipt}
        fields:
          receipt_number: header.receipt
          lines: {each: records, fields: {quantity: {from: qty, type: decimal}}}
    """))
    raw = b"receipt,qty\nR1,1\nR1,2\nR1,\"3,x\"\n"
    with pytest.raises(MappingError, match=r'lines\[2\].quantity: a decimal number \(got "3,x" from qty, '
                                           r"source line 4\)"):
        list(mapping.run(raw))


def test_a_default_stands_in_for_a_missing_value(write_mapping):
    mapping = json_mapping(write_mapping, """
        status: {from: state, default: open}
        notes: {from: text, required: false}
    """)
    assert mapping.apply({"text": "   "}) == {"status": "open"}


def test_an_unknown_code_is_an_error_unless_the_table_has_a_default(write_mapping):
    mapping = json_mapping(write_mapping, """
        warehouse: {from: plant, table: plants}
        uom: {from: unit, table: units}
    """, extra="""
        tables:
          plants: {"1000": WH1, "2000": WH2}
          units: {values: {ST: EA}, default: EA}
    """)
    assert mapping.apply({"plant": "1000", "unit": "XYZ"}) == {"warehouse": "WH1", "uom": "EA"}
    with pytest.raises(MappingError, match=r'warehouse: a code of table plants .*known: 1000, 2000.* '
                                           r'\(got "3000" from plant\)'):
        mapping.apply({"plant": "3000", "unit": "ST"})


def test_every_field_problem_of_a_document_is_reported_at_once(write_mapping):
    mapping = json_mapping(write_mapping, """
        a: {from: a, type: integer}
        b: {from: b, type: date}
        c: c
    """)
    with pytest.raises(MappingError) as caught:
        mapping.apply({"a": "1.5", "b": "2026-13-45"})
    assert [problem.path for problem in caught.value.problems] == ["a", "b", "c"]


# --- expressions: compiled to closures, with JMESPath's own results -------------------------

EXPRESSION_DOCUMENT = {
    "a": {"b": [{"k": "1", "v": 0}, {"k": "2", "v": False}, {"k": "1", "v": "x"}], "n": None},
    "l": [1, 2, [3, 4]], "s": "text", "z": 0, "e": "", "t": True,
}


@pytest.mark.parametrize("expression", [
    "a.b", "a.b[0].k", "a.b[5]", "a.b[-1].v", "a.n.x", "s.x", "l[0]", "s[0]", "a.b[?k=='1']",
    "a.b[?k=='1'].v", "a.b[?k=='1'] | [1].v", "a.b[?v]", "a.b[?v == `0`]", "a.b[?v != `false`].k",
    "z || s", "e || s", "z && s", "e && s", "t && a.n", "[s, z, a.n]", "a.n.[s]", "a.b[*].k", "l[]",
    "length(a.b)", "a.b[?k=='1'] | length(@)", "join(',', a.b[].k)", "`1` == `1.0`", "t == `1`",
    "not_null(a.n, s)", "@", "l[?@ > `1`]", "!z", "a.b[0:2].k", "{x: s}",
])
def test_compiled_expressions_give_what_jmespath_gives(expression):
    import jmespath

    from esb.mapping import Expression

    expected = jmespath.search(expression, EXPRESSION_DOCUMENT)
    assert Expression(expression).search(EXPRESSION_DOCUMENT) == expected


def test_an_expression_that_fails_at_run_time_is_a_mapping_error_naming_it(write_mapping):
    mapping = json_mapping(write_mapping, "n: {from: \"a[?k > `0`] | [0].k\"}")
    with pytest.raises(MappingError, match=r"n: expression .* to work"):
        mapping.apply({"a": [{"k": "text"}]})


# --- the mapping file is checked, with lines -----------------------------------------------

def test_a_bad_jmespath_expression_is_a_config_error_with_file_and_line(write_mapping):
    path = write_mapping("""
        direction: in
        canonical_type: purchase_order
        input: {format: json}
        fields:
          order_number: header.number
          lines:
            each: "items[?qty > `0`"
            fields: {sku: material}
    """)
    with pytest.raises(ConfigError) as caught:
        load_mapping(path)
    (problem,) = caught.value.problems
    assert problem.file == str(path) and problem.line == 7
    assert "bad JMESPath expression" in problem.what and "items[?qty" in problem.what


def test_check_mapping_returns_every_problem_with_its_line_and_suggestions(write_mapping):
    path = write_mapping("""
        direction: inn
        canonical_type: purchase_ordr
        input: {format: cvs}
        tables:
          units: {ST: EA}
        fields:
          a: {from: x, type: decmal}
          b: {from: y, table: unit}
          c: {from: z, tabel: units}
          d: 42
          e: {from: "a..b"}
    """)
    problems = check_mapping(path)
    found = {(problem.line, problem.what.split(":")[0]) for problem in problems}
    assert any(p.line == 1 and p.what.startswith('direction must be "in"') for p in problems)
    assert any(p.line == 2 and 'did you mean "purchase_order"' in p.what for p in problems)
    assert any(p.line == 3 and 'did you mean "csv"' in p.what for p in problems)
    assert any(p.line == 7 and 'did you mean "decimal"' in p.what for p in problems)
    assert any(p.line == 8 and 'did you mean "units"' in p.what for p in problems)
    assert any(p.line == 9 and 'did you mean "table"' in p.what for p in problems)
    assert any(p.line == 10 and "(YAML read 42); to read the field 42 write it quoted" in p.what
               for p in problems)
    assert any(p.line == 11 and "bad JMESPath" in p.what for p in problems)
    assert len(found) == len(problems) == 8


def test_a_date_format_that_is_not_text_is_a_problem_at_its_line(write_mapping):
    path = write_mapping("""
        direction: in
        canonical_type: item
        input: {format: json}
        fields:
          a: {from: x, type: date, format: 5}
          b: {from: y, type: datetime, format: ["%d.%m.%Y", 7]}
          c: {from: z, type: date, format: ["%d.%m.%Y", "%Y%m%d"]}
    """)
    problems = check_mapping(path)
    assert [(p.line, p.what) for p in problems] == [
        (5, 'a: format is a strptime format ("%d.%m.%Y") or a list of them, not 5'),
        (6, 'b: format is a strptime format ("%d.%m.%Y") or a list of them, not ["%d.%m.%Y",7]'),
    ]


def a_schema_directory(tmp_path: Path, files: dict[str, str]) -> Path:
    directory = tmp_path / "schemas"
    directory.mkdir()
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


OBJECT_SCHEMA = '{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}'


def test_the_canonical_type_of_a_mapping_is_one_the_schema_registry_has(write_mapping, tmp_path, monkeypatch):
    import esb.schemas

    registry = esb.schemas.SchemaRegistry(a_schema_directory(tmp_path, {"pallet.v1.json": OBJECT_SCHEMA}))
    monkeypatch.setattr(esb.schemas, "default_registry", lambda: registry)
    pallet = write_mapping("direction: in\ncanonical_type: pallet\ninput: {format: json}\nfields: {id: a}\n",
                           name="pallet.in.yaml")
    order = write_mapping("direction: in\ncanonical_type: purchase_order\ninput: {format: json}\n"
                          "fields: {id: a}\n", name="order.in.yaml")

    assert check_mapping(pallet) == []
    (problem,) = check_mapping(order)
    assert problem.line == 2
    assert problem.what == 'unknown canonical type "purchase_order"; known: pallet'


def test_a_mapping_whose_canonical_type_cannot_be_checked_says_the_schemas_are_broken(write_mapping, tmp_path,
                                                                                     monkeypatch):
    import esb.schemas

    broken = a_schema_directory(tmp_path, {"pallet.v1.json": "{"})
    monkeypatch.setattr(esb.schemas, "default_registry", lambda: esb.schemas.SchemaRegistry(broken))
    path = write_mapping("direction: in\ncanonical_type: pallet\ninput: {format: json}\nfields: {id: a}\n")

    (problem,) = check_mapping(path)
    assert problem.line == 2
    assert problem.what.startswith('canonical_type "pallet" cannot be checked: the schemas have 1 problem '
                                   "(esb check lists them), the first: ")
    assert "pallet.v1.json:1: not valid JSON" in problem.what


def test_every_canonical_type_of_the_shipped_schemas_can_be_mapped(write_mapping):
    from esb.schemas import default_registry

    for name in default_registry().types():
        path = write_mapping(f"direction: out\ncanonical_type: {name}\noutput: {{format: json}}\n"
                             f"fields: {{id: a}}\n", name=f"{name}.out.yaml")
        assert check_mapping(path) == [], name


def test_unknown_codec_options_and_bad_fixed_width_layouts_are_problems(write_mapping):
    path = write_mapping("""
        direction: in
        canonical_type: goods_receipt
        input:
          format: fixedwidth
          encodng: gbk
          fields: [{name: a, start: 0, length: 2}]
        fields: {receipt_number: a}
    """)
    whats = [problem.what for problem in check_mapping(path)]
    assert any('did you mean "encoding"' in what for what in whats)
    assert any("start must be >= 1" in what for what in whats)


def test_a_missing_mapping_file_is_a_config_error():
    with pytest.raises(ConfigError, match="mapping file not found"):
        load_mapping("no/such/mapping.in.yaml")


def test_the_shipped_mappings_have_no_problems():
    for path in sorted((PROJECT / "mappings").rglob("*.yaml")):
        assert check_mapping(path) == [], path


# --- conversions -----------------------------------------------------------------------------

def test_decimals_stay_exact_from_json_through_jmespath_and_constants(write_mapping):
    mapping = json_mapping(write_mapping, """
        total: {from: "sum(lines[].qty)", type: decimal}
        constant: {value: 0.1}
        text_sum: {from: "to_number(text)", type: decimal}
    """)
    document = jsonfmt.loads(b'{"lines": [{"qty": 0.1}, {"qty": 0.2}], "text": "0.30"}')
    result = mapping.apply(document)
    assert result == {"total": Decimal("0.3"), "constant": Decimal("0.1"), "text_sum": Decimal("0.3")}
    assert jsonfmt.dumps(result) == '{"total":0.3,"constant":0.1,"text_sum":0.3}'


@pytest.mark.parametrize(("text", "expected"), [
    ("12.000", Decimal("12")), ("12,5", Decimal("12.5")), ("13-", Decimal("-13")), ("-0.5", Decimal("-0.5")),
    (" 1 200.50 ", Decimal("1200.5")), ("0000150", Decimal("150")), (".5", Decimal("0.5")),
])
def test_decimal_text_in_sap_and_european_forms(write_mapping, text, expected):
    mapping = json_mapping(write_mapping, "q: {from: q, type: decimal}")
    assert mapping.apply({"q": text}) == {"q": expected}


@pytest.mark.parametrize("text", ["1.2.3", "12-5", "-13-", "abc", "1,234.5", "NaN"])
def test_text_that_is_not_a_decimal_is_refused(write_mapping, text):
    mapping = json_mapping(write_mapping, "q: {from: q, type: decimal}")
    with pytest.raises(MappingError, match="a decimal number"):
        mapping.apply({"q": text})


def test_integers_sap_numbers_and_scaled_text(write_mapping):
    mapping = json_mapping(write_mapping, """
        line_number: {from: posex, type: integer}
        sku: {from: matnr, type: string, strip_leading_zeros: true}
        code: {from: code, type: string, strip_leading_zeros: true}
        item: {from: line, type: string, zero_pad: 6}
        material: {from: sku, type: string, zero_pad: 18}
        quantity: {from: qty, type: string, scale: 3}
    """)
    result = mapping.apply({"posex": "000010", "matnr": "000000000000012345", "code": "00A1", "line": 10,
                            "sku": "12345", "qty": Decimal("0.1")})
    assert result == {"line_number": 10, "sku": "12345", "code": "00A1", "item": "000010",
                      "material": "000000000000012345", "quantity": "0.100"}


def test_the_empty_sap_date_is_no_date(write_mapping):
    mapping = json_mapping(write_mapping, """
        order_date: {from: datum, type: date}
        expected_date: {from: edatu, type: date, required: false}
    """)
    assert mapping.apply({"datum": "20261130", "edatu": "00000000"}) == {"order_date": "2026-11-30"}
    with pytest.raises(MappingError, match=r'order_date: a value .* \(got nothing at datum\)'):
        mapping.apply({"datum": "00000000"})


def test_local_times_get_the_mappings_zone_and_zoned_times_keep_theirs(write_mapping):
    mapping = json_mapping(write_mapping, """
        sap: {from: "concat(datum, uzeit)", type: datetime}
        local: {from: local, type: datetime}
        zoned: {from: zoned, type: datetime}
        berlin_summer: {from: local, type: datetime, timezone: Europe/Berlin}
        business_date: {from: zoned, type: date}
    """, extra="timezone: Asia/Shanghai\n")
    result = mapping.apply({"datum": "20261124", "uzeit": "083000", "local": "2026-07-01 10:00:00",
                            "zoned": "2026-11-26T23:55:00Z"})
    assert result == {"sap": "2026-11-24T08:30:00+08:00", "local": "2026-07-01T10:00:00+08:00",
                      "zoned": "2026-11-26T23:55:00+00:00", "berlin_summer": "2026-07-01T10:00:00+02:00",
                      "business_date": "2026-11-27"}


def test_a_quantity_is_converted_between_units_by_a_factor_table(write_mapping):
    mapping = json_mapping(write_mapping, """
        quantity: {from: qty, type: decimal, convert_unit: {factors: to_each, unit: uom}}
        uom: {value: EA}
    """, extra="unit_factors:\n  to_each: {CT: 12, PX: 480, EA: 1, KAR: 0.5}\n")
    assert mapping.apply({"qty": "3", "uom": "CT"}) == {"quantity": Decimal("36"), "uom": "EA"}
    assert mapping.apply({"qty": "0.3", "uom": "KAR"}) == {"quantity": Decimal("0.15"), "uom": "EA"}
    with pytest.raises(MappingError, match=r'unit_factors to_each .* but the unit is "BOX"'):
        mapping.apply({"qty": "1", "uom": "BOX"})


def test_a_table_reversed_gives_the_source_code_back(write_mapping):
    mapping = json_mapping(write_mapping, "unit: {from: uom, reverse_table: units}",
                           extra="tables:\n  units: {ST: EA, KAR: CT}\n")
    assert mapping.apply({"uom": "CT"}) == {"unit": "KAR"}


def test_a_table_that_maps_two_codes_to_one_cannot_be_reversed_without_a_reverse_section(write_mapping):
    path = write_mapping("""
        direction: out
        canonical_type: purchase_order
        output: {format: json}
        tables:
          units: {PCS: EA, EA: EA}
        fields:
          unit: {from: uom, reverse_table: units}
    """)
    (problem,) = check_mapping(path)
    assert problem.line == 7 and "cannot be reversed" in problem.what


# --- structure: nesting, lists, conditions, constants --------------------------------------

def test_nested_objects_lists_conditions_and_root(write_mapping):
    mapping = json_mapping(write_mapping, """
        order_number: number
        kind: {value: standard}
        supplier:
          from: "partners[?role=='LF'] | [0]"
          fields:
            id: {from: id, type: string}
            address: {required: false, fields: {city: {from: city, required: false}}}
        urgent: {from: prio, type: boolean, when: "prio"}
        lines:
          each: items
          when: "qty != '0'"
          fields:
            line_number: {from: pos, type: integer}
            warehouse: "root().plant"
            serials: {required: false, each: serials, item: {from: "@", type: string}}
    """)
    document = {"number": "PO1", "plant": "1000", "prio": "X",
                "partners": [{"role": "WE", "id": 9}, {"role": "LF", "id": 7}],
                "items": [{"pos": "10", "qty": "1", "serials": ["S1", " S2 "]}, {"pos": "20", "qty": "0"},
                          {"pos": "30", "qty": "2"}]}
    assert mapping.apply(document) == {
        "order_number": "PO1", "kind": "standard", "supplier": {"id": "7"}, "urgent": True,
        "lines": [{"line_number": 10, "warehouse": "1000", "serials": ["S1", "S2"]},
                  {"line_number": 30, "warehouse": "1000"}],
    }
    assert "urgent" not in mapping.apply({**document, "prio": ""})


def test_an_element_that_occurred_once_is_a_list_of_one_for_each(write_mapping):
    mapping = json_mapping(write_mapping, "lines: {each: item, fields: {sku: sku}}")
    assert mapping.apply({"item": {"sku": "A"}}) == {"lines": [{"sku": "A"}]}


def test_a_required_list_without_items_is_an_error(write_mapping):
    mapping = json_mapping(write_mapping, "lines: {each: items, fields: {sku: sku}}")
    with pytest.raises(MappingError, match=r"lines: at least one item .* \(got nothing at items\)"):
        mapping.apply({"items": []})


# --- decoding into documents: split and grouping -----------------------------------------

def test_split_makes_one_document_per_idoc(write_mapping):
    mapping = load_mapping(write_mapping("""
        direction: in
        canonical_type: purchase_order
        input: {format: xml, split: ORDERS05.IDOC}
        fields: {order_number: E1EDK01.BELNR}
    """))
    raw = b"<ORDERS05><IDOC><E1EDK01><BELNR>1</BELNR></E1EDK01></IDOC>" \
          b"<IDOC><E1EDK01><BELNR>2</BELNR></E1EDK01></IDOC></ORDERS05>"
    assert list(mapping.run(raw)) == [{"order_number": "1"}, {"order_number": "2"}]
    with pytest.raises(DecodeError, match="no document at ORDERS05.IDOC"):
        list(mapping.run(b"<ORDERS05/>"))


def test_grouping_by_a_column_needs_each_documents_rows_together(write_mapping):
    mapping = load_mapping(write_mapping("""
        direction: in
        canonical_type: goods_receipt
        input: {format: csv, group_by: receipt}
        fields: {receipt_number: key, lines: {each: records, fields: {sku: sku}}}
    """))
    rows = b"receipt,sku\nR1,A\nR1,B\nR2,C\n"
    assert list(mapping.run(rows)) == [{"receipt_number": "R1", "lines": [{"sku": "A"}, {"sku": "B"}]},
                                       {"receipt_number": "R2", "lines": [{"sku": "C"}]}]
    with pytest.raises(DecodeError, match="line 4: receipt R1 appears again after other documents"):
        list(mapping.run(b"receipt,sku\nR1,A\nR2,B\nR1,C\n"))
    with pytest.raises(DecodeError, match='no field \'receipt\' to group by \\(did you mean "reciept"\\?\\)'):
        list(mapping.run(b"reciept,sku\nR1,A\n"))


def test_fixed_width_header_and_line_records_group_into_documents(write_mapping):
    mapping = load_mapping(write_mapping("""
        direction: in
        canonical_type: goods_receipt
        input:
          format: fixedwidth
          group_starts_with: H
          record_type: {start: 1, length: 1}
          records:
            H: [{name: receipt, start: 2, length: 6}, {name: at, start: 8, length: 14}]
            L: [{name: sku, start: 2, length: 6}, {name: qty, start: 8, length: 5}]
        timezone: Asia/Shanghai
        fields:
          receipt_number: header.receipt
          received_at: {from: header.at, type: datetime}
          lines: {each: "records[?__type__=='L']", fields: {sku: sku, quantity: {from: qty, type: decimal}}}
    """))
    raw = b"HGR001 20261130140533\nLA1    12,5 \nLB2    3-   \nHGR002 20261201080000\nLC3    1    \n"
    documents = list(mapping.run(raw))
    assert documents[0] == {"receipt_number": "GR001", "received_at": "2026-11-30T14:05:33+08:00",
                            "lines": [{"sku": "A1", "quantity": Decimal("12.5")},
                                      {"sku": "B2", "quantity": Decimal("-3")}]}
    assert documents[1]["lines"] == [{"sku": "C3", "quantity": 1}]


# --- outbound: encode ----------------------------------------------------------------------

def test_an_out_mapping_encodes_its_target_format_and_reports_what_cannot_be_written(write_mapping):
    mapping = load_mapping(write_mapping("""
        direction: out
        canonical_type: goods_receipt
        output: {format: csv, encoding: gbk, records: rows}
        fields:
          rows: {each: lines, fields: {sku: sku, qty: {from: quantity, type: decimal}, text: text}}
    """, name="gr.out.yaml"))
    document = mapping.apply({"lines": [{"sku": "A", "quantity": Decimal("1.50"), "text": "中文"}]})
    assert mapping.encode(document) == "sku,qty,text\r\nA,1.5,中文\r\n".encode("gbk")
    with pytest.raises(MappingError, match="cannot be written as csv"):
        mapping.encode(mapping.apply({"lines": [{"sku": "A", "quantity": 1, "text": "\u20ac\U0001F600"}]}))


# --- loading is cached, and the hot path is fast ------------------------------------------

def test_load_mapping_is_cached_until_the_file_changes(write_mapping):
    path = write_mapping("direction: in\ncanonical_type: item\ninput: {format: json}\nfields: {sku: a}\n")
    first = load_mapping(path)
    assert load_mapping(path) is first
    path.write_text("direction: in\ncanonical_type: item\ninput: {format: json}\nfields: {sku: b}\n")
    os.utime(path, ns=(first_mtime := path.stat().st_mtime_ns + 10**9, first_mtime))
    assert load_mapping(path).apply({"b": "x"}) == {"sku": "x"}


def test_apply_maps_a_ten_line_purchase_order_in_well_under_a_millisecond():
    mapping = load_mapping(PROJECT / "mappings" / "erp" / "purchase_order.in.yaml")
    raw = (PROJECT / "mappings" / "erp" / "purchase_order.in.cases" /
           "two_lines_cartons_and_pieces.input.xml").read_bytes()
    (document,) = list(mapping.decode(raw))
    idoc = dict(document)
    idoc["E1EDP01"] = (document["E1EDP01"] * 5)[:10]
    assert len(mapping.apply(idoc)["lines"]) == 10
    runs = 300
    seconds = min(timeit.repeat(lambda: mapping.apply(idoc), number=runs, repeat=3)) / runs
    print(f"\napply: {seconds * 1e6:.0f} µs per 10-line purchase order")
    assert seconds < 0.005  # generous, for slow CI machines; typically far less

"""The codecs: exact JSON, safe XML, streaming CSV and fixed-width, and their bad inputs."""

from __future__ import annotations

import io
import itertools
from decimal import Decimal

import pytest

from esb import codecs
from esb.codecs import LINE_KEY, RECORD_TYPE_KEY
from esb.errors import DecodeError, NotFound


def decode_all(format_name: str, data: bytes, **options):
    return list(codecs.decode(format_name, data, **options))


# --- registry ------------------------------------------------------------------------------

def test_an_unknown_format_is_refused_with_a_suggestion():
    with pytest.raises(NotFound, match='did you mean "csv"'):
        codecs.get_codec("cvs")


def test_each_format_is_sent_as_the_first_content_type_its_codec_declares():
    assert {name: codecs.content_type(name) for name in codecs.formats()} == {
        "csv": "text/csv", "fixedwidth": "text/plain", "json": "application/json", "xml": "application/xml",
        "x12": "application/edi-x12", "edifact": "application/edifact"}


@pytest.mark.parametrize(("content_type", "format_name"), [
    ("application/json", "json"), ("Application/JSON; charset=utf-8", "json"), ("text/xml", "xml"),
    ("application/xml", "xml"), ("text/csv; charset=gbk", "csv"), ("text/plain", "fixedwidth"),
    ("application/vnd.erp.order+json", "json"), ("application/soap+xml", "xml"),
])
def test_a_content_type_names_the_format_whose_codec_declares_it(content_type, format_name):
    assert codecs.format_of(content_type) == format_name


@pytest.mark.parametrize("content_type", [None, "", "application/octet-stream", "image/png"])
def test_a_content_type_no_codec_declares_has_no_format(content_type):
    assert codecs.format_of(content_type) is None


# --- JSON ----------------------------------------------------------------------------------

def test_json_numbers_with_a_fraction_are_exact_decimals():
    (document,) = decode_all("json", b'{"a": 0.1, "b": 0.2, "n": 3}')
    assert document["a"] + document["b"] == Decimal("0.3")
    assert document["n"] == 3 and isinstance(document["n"], int)


def test_malformed_json_names_the_line_and_column():
    with pytest.raises(DecodeError, match=r"malformed JSON at line 3, column 8"):
        decode_all("json", b'{\n  "a": 1,\n  "b": }\n')


def test_json_that_is_not_utf8_names_the_line():
    with pytest.raises(DecodeError, match="JSON line 2: not valid utf-8"):
        decode_all("json", b'{\n"a": "\xd6\xd0"}')


def test_json_lines_yield_one_document_per_line_and_errors_name_the_line():
    assert decode_all("json", b'{"a": 1}\n\n{"a": 2}\n', lines=True) == [{"a": 1}, {"a": 2}]
    with pytest.raises(DecodeError, match="line 3"):
        decode_all("json", b'{"a": 1}\n{"a": 2}\n{"a": \n', lines=True)


def test_json_larger_than_the_limit_is_refused():
    with pytest.raises(DecodeError, match="larger than the limit of 10 bytes"):
        decode_all("json", b'{"a": "0123456789"}', max_bytes=10)


def test_json_encoding_writes_decimals_as_numbers():
    assert codecs.encode("json", {"q": Decimal("0.3")}) == b'{"q":0.3}'


# --- XML -----------------------------------------------------------------------------------

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE order [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<order><note>&xxe;</note></order>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>"""


@pytest.mark.parametrize("payload", [XXE, BILLION_LAUGHS], ids=["xxe", "billion_laughs"])
def test_xml_with_entity_declarations_is_refused_and_nothing_is_expanded(payload):
    with pytest.raises(DecodeError, match="DOCTYPE is refused") as caught:
        decode_all("xml", payload)
    assert "root:" not in str(caught.value) and "lollol" not in str(caught.value)


@pytest.mark.parametrize("payload", [XXE, BILLION_LAUGHS, b"<?xml version='1.0'?><!DOCTYPE order><order/>"],
                         ids=["xxe", "billion_laughs", "plain_doctype"])
def test_a_doctype_hidden_behind_a_long_comment_is_still_refused_after_parsing(payload):
    padded = payload.replace(b"?>", b"?><!--" + b"x" * 8000 + b"-->", 1)
    with pytest.raises(DecodeError, match="DOCTYPE is refused|entity amplification") as caught:
        decode_all("xml", padded)
    assert "root:" not in str(caught.value) and "lollol" not in str(caught.value)


def test_broken_xml_names_the_line_and_column():
    with pytest.raises(DecodeError, match=r"malformed XML at line 2, column \d+"):
        decode_all("xml", b"<a>\n<b>1</a>")


def test_xml_becomes_dicts_with_attributes_text_and_lists_for_repeats():
    data = b'<r xmlns="urn:x" xmlns:p="urn:p"><p:E SEGMENT="1"><V>1</V></p:E><E><V>2</V></E>' \
           b'<One>t</One><Empty/><Mixed k="v">text</Mixed></r>'
    (document,) = decode_all("xml", data, repeat=["One"])
    assert document == {"r": {
        "E": [{"@SEGMENT": "1", "V": "1"}, {"V": "2"}],
        "One": ["t"],
        "Empty": None,
        "Mixed": {"@k": "v", "#text": "text"},
    }}


def test_the_ballerina_delvry03_sample_decodes(samples_dir):
    with (samples_dir / "idoc" / "ballerina_DELVRY03_minimal.xml").open("rb") as stream:
        (document,) = codecs.decode("xml", stream)
    idoc = document["DELVRY03"]["IDOC"]
    assert idoc["@BEGIN"] == "1"
    assert idoc["EDI_DC40"]["DOCNUM"] == "Avon"  # a non-numeric DOCNUM stays text
    assert idoc["E1EDL20"]["GEWEI"] == "KGM"


def test_xml_encoding_is_the_inverse_of_decoding():
    document = {"ORDERS05": {"IDOC": {"@BEGIN": "1", "E1EDP01": [{"MENGE": Decimal("12.000")},
                                                                  {"MENGE": Decimal("1E+1")}],
                                      "FLAG": True, "EMPTY": None}}}
    written = codecs.encode("xml", document, pretty=False)
    assert b"<E1EDP01><MENGE>12.000</MENGE></E1EDP01><E1EDP01><MENGE>10</MENGE></E1EDP01>" in written
    (again,) = decode_all("xml", written)
    assert again == {"ORDERS05": {"IDOC": {"@BEGIN": "1", "E1EDP01": [{"MENGE": "12.000"}, {"MENGE": "10"}],
                                           "FLAG": "true", "EMPTY": None}}}


# --- CSV -----------------------------------------------------------------------------------

def test_the_stedi_inventory_feed_decodes_with_slashes_in_skus(samples_dir):
    with (samples_dir / "flatfile" / "stedi_inventory_feed.csv").open("rb") as stream:
        records = list(codecs.decode("csv", stream))
    assert [record["SKU"] for record in records] == ["ACM/8900-100", "ACM/8900-250", "ACM/8900-400",
                                                      "ACM/1100-001"]
    assert records[0][LINE_KEY] == 2 and records[0]["Option2 Name"] == ""


def test_csv_quoted_newlines_and_crlf_work_and_records_keep_their_first_line():
    data = b'a,b\r\n1,"two\r\nlines"\r\n\r\n2,"x, y"\r\n'
    assert decode_all("csv", data) == [{"a": "1", "b": "two\r\nlines", LINE_KEY: 2},
                                       {"a": "2", "b": "x, y", LINE_KEY: 5}]


def test_a_csv_row_with_the_wrong_number_of_fields_names_its_line():
    with pytest.raises(DecodeError, match="CSV line 4: 3 fields, but the header has 2"):
        decode_all("csv", b'a,b\n1,"multi\nline"\n1,2,3\n')


def test_a_file_declared_utf8_holding_gbk_names_the_line_and_suggests_gbk():
    data = "receipt,text\nR1,ok\nR2,ok\nR3,ok\nR4,ok\nR5,ok\nR6,外箱破损\n".encode("gbk")
    with pytest.raises(DecodeError, match=r"CSV line 7: not valid utf-8 .*; is the file gbk\?"):
        decode_all("csv", data)


def test_gbk_with_chinese_text_decodes_when_declared():
    data = "sku,description\nA1,铸铁砧\n".encode("gbk")
    assert decode_all("csv", data, encoding="gbk") == [{"sku": "A1", "description": "铸铁砧", LINE_KEY: 2}]


def test_gbk_with_a_gb18030_byte_order_mark_decodes():
    data = b"\x84\x31\x95\x33" + "sku,description\nA1,铸铁砧\n".encode("gbk")
    assert decode_all("csv", data, encoding="gbk")[0]["description"] == "铸铁砧"


@pytest.mark.parametrize("declared", ["utf-8", "utf-8-sig", "gbk"])
def test_a_utf8_byte_order_mark_is_understood_whatever_the_declared_encoding(declared):
    data = b"\xef\xbb\xbf" + "sku,description\nA1,铸铁砧\n".encode()
    (record,) = decode_all("csv", data, encoding=declared)
    assert list(record) == ["sku", "description", LINE_KEY] and record["description"] == "铸铁砧"


def test_utf16_is_refused_with_a_clear_error():
    with pytest.raises(DecodeError, match="UTF-16"):
        decode_all("csv", "a,b\n1,2\n".encode("utf-16"))


def test_csv_options_delimiter_quotechar_and_columns_without_header():
    data = b"1;'x;y'\n2;z\n"
    records = decode_all("csv", data, delimiter=";", quotechar="'", header=False, columns=["n", "t"])
    assert [(record["n"], record["t"]) for record in records] == [("1", "x;y"), ("2", "z")]


def test_csv_is_read_lazily_from_an_endless_stream():
    class Endless(io.RawIOBase):
        def __init__(self):
            self.lines = itertools.chain([b"n,v\n"], (f"{i},x\n".encode() for i in itertools.count()))

        def readable(self):
            return True

        def readline(self, size=-1):
            return next(self.lines)

    first = list(itertools.islice(codecs.decode("csv", Endless()), 3))
    assert [record["n"] for record in first] == ["0", "1", "2"]


def test_csv_encoding_writes_a_header_and_decimals_without_exponent():
    rows = [{"sku": "A1", "qty": Decimal("1E+1"), "lot": None},
            {"sku": "中", "qty": Decimal("0.3"), "lot": "L"}]
    assert codecs.encode("csv", rows, encoding="gbk") == "sku,qty,lot\r\nA1,10,\r\n中,0.3,L\r\n".encode("gbk")


# --- fixed-width ---------------------------------------------------------------------------

LAYOUT = {
    "record_type": {"start": 1, "length": 1},
    "records": {
        "H": [{"name": "receipt", "start": 2, "length": 8}, {"name": "date", "start": 10, "end": 17}],
        "L": [{"name": "sku", "start": 2, "length": 8},
              {"name": "qty", "start": 10, "length": 7, "type": "decimal", "decimals": 3}],
    },
}


def test_fixed_width_records_are_typed_by_their_discriminator():
    data = b"HGR00000120261130\r\nLA1      0012500\nLB2      000013-\n\n"
    records = decode_all("fixedwidth", data, **LAYOUT)
    assert records == [
        {"receipt": "GR000001", "date": "20261130", RECORD_TYPE_KEY: "H", LINE_KEY: 1},
        {"sku": "A1", "qty": Decimal("12.500"), RECORD_TYPE_KEY: "L", LINE_KEY: 2},
        {"sku": "B2", "qty": Decimal("-0.013"), RECORD_TYPE_KEY: "L", LINE_KEY: 3},
    ]


def test_a_truncated_last_line_names_the_line():
    expected = r"fixed-width line 2: 12 characters long, but record type 'L' needs 16"
    with pytest.raises(DecodeError, match=expected):
        decode_all("fixedwidth", b"HGR00000120261130\nLA1      001", **LAYOUT)


def test_an_unknown_record_type_names_the_line_and_the_known_types():
    with pytest.raises(DecodeError, match="line 1: unknown record type 'X'; known: H, L"):
        decode_all("fixedwidth", b"XGR00000120261130\n", **LAYOUT)


def test_fixed_width_positions_in_bytes_cut_gbk_text_right():
    layout = {"units": "bytes", "encoding": "gbk",
              "fields": [{"name": "name", "start": 1, "length": 10}, {"name": "qty", "start": 11, "length": 3,
                                                                       "type": "integer"}]}
    data = "铸铁砧    007\n".encode("gbk")
    records = decode_all("fixedwidth", data, **layout)
    assert records == [{"name": "铸铁砧", "qty": 7, LINE_KEY: 1}]
    assert codecs.encode("fixedwidth", records, **layout) == data


def test_fixed_width_encoding_pads_numbers_and_refuses_what_does_not_fit():
    records = [{RECORD_TYPE_KEY: "L", "sku": "A1", "qty": Decimal("-1.5")}]
    assert codecs.encode("fixedwidth", records, **LAYOUT) == b"LA1      -001500\n"
    with pytest.raises(ValueError, match="does not fit"):
        codecs.encode("fixedwidth", [{RECORD_TYPE_KEY: "L", "sku": "TOO-LONG-SKU", "qty": 1}], **LAYOUT)

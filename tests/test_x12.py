"""ANSI X12: the envelope, separators from the ISA, control numbers, loops, on the real samples."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from esb import codecs, jsonfmt
from esb.errors import DecodeError
from esb.mapping import load_mapping
from esb.schemas import default_registry

X12 = "x12"


def decode_all(data: bytes, **options):
    return list(codecs.decode(X12, data, **options))


def sample(samples_dir, name: str) -> bytes:
    return (samples_dir / "x12" / name).read_bytes()


def elements(document, tag):
    return [segment for segment in document["segments"] if segment["tag"] == tag]


TWO_SETS = (b"ISA|00|          |00|          |ZZ|SENDER         |ZZ|RECEIVER       |260714|1200|U|00401|"
            b"000000042|0|T|:'\n"
            b"GS|OW|SENDER|RECEIVER|20260714|1200|42|X|004010'\n"
            b"ST|940|0001'W05|N|ORD1||PO1'LX|1'W01|12|CA||VN|SKU-1:X'SE|5|0001'\n"
            b"ST|940|0002'W05|F|ORD2||PO2'LX|1'W01|3|EA||VN|SKU-2'SE|5|0002'\n"
            b"GE|2|42'IEA|1|000000042'\n")


# --- the envelope on real files ------------------------------------------------------------

def test_the_943_sample_decodes_to_one_transaction_with_its_envelope(samples_dir):
    (document,) = decode_all(sample(samples_dir, "stupidedi_943_AR943.edi"))
    assert document["interchange"]["sender"] == "SENDER"
    assert document["interchange"]["separators"] == {"element": "*", "component": ">", "segment": "~",
                                                     "repetition": "U"}
    assert document["group"]["functional_id"] == "AR"
    assert document["transaction"] == {"set": "943", "control_number": "0001", "version": "004010",
                                       "problems": []}
    assert [segment["tag"] for segment in document["segments"]] == [
        "W06", "N1", "G62", "W27", "W04", "N9", "W03"]
    assert document["W06"][0]["W0602"] == "DO12345"


def test_an_856_whose_segments_end_with_newlines_only_decodes_when_control_numbers_are_reported(samples_dir):
    data = sample(samples_dir, "gozer_856_asn_004060.txt")
    with pytest.raises(DecodeError, match=r"segment 35 \(IEA\), element IEA02: IEA02 000000049 does not "
                                          r"match ISA13 000003438"):
        decode_all(data)
    (document,) = decode_all(data, control_numbers="report")
    assert document["interchange"]["separators"]["segment"] == "\n"
    assert document["interchange"]["problems"] == [
        {"code": "001", "text": "IEA02 000000049 does not match ISA13 000003438", "segment": 35}]
    assert len(document["segments"]) == 29  # SE01 31 = ST + 29 + SE
    assert elements(document, "LIN")[1]["LIN03"] == "99887D"


def test_a_segment_wrapped_by_a_newline_is_joined_so_the_count_matches_se01(samples_dir):
    (document,) = decode_all(sample(samples_dir, "x12types_940_generalmills_original_N.edi"))
    first_line = elements(document, "W01")[0]
    assert (first_line["W0115"], first_line["W0116"]) == ("PI", "001089")
    assert document["interchange"]["separators"]["component"] == "\\"


def test_mismatched_group_and_interchange_control_numbers_are_refused_or_reported(samples_dir):
    data = sample(samples_dir, "x12types_940_1edisource.edi")
    with pytest.raises(DecodeError, match=r"X12 segment 32 \(GE\), element GE02: GE02 575103 does not match "
                                          r"GS06 3317"):
        decode_all(data)
    (document,) = decode_all(data, control_numbers="report")
    assert [problem["code"] for problem in document["group"]["problems"]] == ["4"]
    assert [problem["code"] for problem in document["interchange"]["problems"]] == ["001"]


def test_a_945_without_an_envelope_is_read_with_guessed_separators_and_its_wrong_count_named(samples_dir):
    data = sample(samples_dir, "x12types_945_simplot_no_envelope.edi")
    with pytest.raises(DecodeError, match=r"SE01 says 32 segments, the transaction set has 29"):
        decode_all(data)
    (document,) = decode_all(data, control_numbers="report")
    assert document["interchange"] is None and document["group"] is None
    assert document["transaction"]["set"] == "945"
    assert len(elements(document, "W12")) == 3


def test_two_interchanges_in_one_file_give_every_transaction(samples_dir):
    data = sample(samples_dir, "stupidedi_943_AR943.edi") + sample(samples_dir, "x12types_850_004010.edi")
    assert [document["transaction"]["set"] for document in decode_all(data)] == ["943", "850"]


# --- separators, BOM, several sets, streams ------------------------------------------------

def test_separators_are_whatever_the_isa_declares_and_each_set_is_a_document():
    first, second = decode_all(TWO_SETS)
    assert first["interchange"]["separators"] == {"element": "|", "component": ":", "segment": "'",
                                                  "repetition": "U"}
    assert first["W05"][0]["W0502"] == "ORD1" and second["W05"][0]["W0502"] == "ORD2"
    assert first["segments"][-1]["W0105"] == ["SKU-1", "X"]  # a composite element is a list


def test_a_bom_and_crlf_line_breaks_are_ignored():
    data = b"\xef\xbb\xbf" + TWO_SETS.replace(b"'\n", b"'\r\n")
    assert [document["transaction"]["control_number"] for document in decode_all(data)] == ["0001", "0002"]


def test_a_stream_read_in_small_chunks_gives_the_same_documents(monkeypatch):
    from esb.codecs import edi
    monkeypatch.setattr(edi, "CHUNK_CHARS", 7)
    assert decode_all(io.BytesIO(TWO_SETS)) == decode_all(TWO_SETS)


def test_a_wrong_segment_count_names_the_segment_and_the_element():
    data = TWO_SETS.replace(b"SE|5|0002", b"SE|6|0002")
    with pytest.raises(DecodeError, match=r"X12 segment 12 \(SE\), element SE01: SE01 says 6 segments, the "
                                          r"transaction set has 5"):
        decode_all(data)


def test_a_wrong_group_count_is_an_error_and_nothing_of_the_interchange_is_yielded():
    documents = codecs.decode(X12, TWO_SETS.replace(b"GE|2|42", b"GE|3|42"))
    with pytest.raises(DecodeError, match=r"GE01 says 3 transaction sets, the group has 2"):
        next(documents)


def test_a_transaction_set_the_mapping_does_not_read_is_named():
    with pytest.raises(DecodeError, match=r"segment 3 \(ST\), element ST01: this is a 940 transaction set, "
                                          r"the mapping reads 945"):
        decode_all(TWO_SETS, transaction_sets=["945"])


def test_a_segment_outside_a_transaction_is_an_error_naming_it():
    data = TWO_SETS.replace(b"GE|2|42'", b"W05|X'GE|2|42'")
    with pytest.raises(DecodeError, match=r"X12 segment 13 \(W05\): expected ST or GE"):
        decode_all(data)


def test_a_truncated_isa_is_an_error():
    with pytest.raises(DecodeError, match=r"segment 1 \(ISA\): fewer than 16 elements"):
        decode_all(b"ISA*00*          *00*")


# --- loops ---------------------------------------------------------------------------------

def test_declared_loops_group_parties_and_lines_so_mappings_select_by_qualifier(samples_dir):
    (document,) = decode_all(sample(samples_dir, "x12types_940_babelway.edi"),
                             loops={"N1": ["N2", "N3", "N4", "PER"], "LX": ["W01", "G69", "N9"]})
    ship_to = next(loop for loop in document["N1_loop"] if loop["N1"][0]["N101"] == "ST")
    assert [n2["N201"] for n2 in ship_to["N2"]] == ["Co Ltd", "Building 2, Marrietta"]
    assert ship_to["PER"][0]["PER06"] == "010-63340122"
    (line,) = document["LX_loop"]
    assert line["W01"][0]["W0105"] == "E000169"
    assert [n9["N901"] for n9 in line["N9"]] == ["LI", "SE", "CO", "1R", "ZZ", "9X"]
    assert [n9["N901"] for n9 in document["N9"]] == ["KK", "ZZ", "ZC"]  # header N9s stay at the top
    assert document["W76"][0]["W7601"] == "2"


def test_nested_loops_close_when_a_segment_belongs_to_an_outer_one():
    data = (b"ST*945*1~W06*F*S1~LX*1~W12*CC*5~N9*LI*10~W12*CC*6~N9*LI*20~LX*2~W12*CC*7~W03*18~SE*11*1~")
    (document,) = decode_all(data, loops={"LX": {"segments": [], "loops": {"W12": ["N9"]}}})
    references = [[w12["N9"][0]["N902"] for w12 in lx["W12_loop"] if "N9" in w12]
                  for lx in document["LX_loop"]]
    assert references == [["10", "20"], []]
    assert document["W03"][0]["W0301"] == "18"


def test_a_bad_loop_declaration_is_a_problem_of_the_options():
    from esb.codecs import x12
    assert x12.option_problems({"loops": {"n1": ["N3"]}}) == [
        "loops.n1: a loop is named by its first segment's tag (2 or 3 capitals)"]


# --- sniffing --------------------------------------------------------------------------------

def test_x12_read_as_csv_says_what_it_is(samples_dir):
    data = sample(samples_dir, "stupidedi_943_AR943.edi")
    with pytest.raises(DecodeError, match="this is X12, the mapping reads CSV"):
        list(codecs.decode("csv", io.BytesIO(data), delimiter="*"))


def test_json_read_as_x12_says_what_it_is():
    with pytest.raises(DecodeError, match="this is JSON, the mapping reads X12"):
        decode_all(b'{"order": 1}')


# --- writing -------------------------------------------------------------------------------

def without_positions(segments):
    return [{key: value for key, value in segment.items() if key != "position"} for segment in segments]


@pytest.mark.parametrize("name", ["stupidedi_943_AR943.edi", "x12types_940_babelway.edi",
                                  "x12types_940_generalmills_original_N.edi", "x12types_850_004010.edi"])
def test_a_decoded_sample_written_back_decodes_to_the_same_segments(samples_dir, name):
    (document,) = decode_all(sample(samples_dir, name))
    written = codecs.encode(X12, document)
    (again,) = decode_all(written)
    assert without_positions(again["segments"]) == without_positions(document["segments"])
    assert again["interchange"]["control_number"] == document["interchange"]["control_number"]
    assert again["interchange"]["separators"] == document["interchange"]["separators"]


def test_the_grouped_shape_an_out_mapping_builds_is_written_in_its_key_order():
    document = {"transaction": {"set": "940"},
                "W05": {"W0501": "N", "W0502": "ORD-7"},
                "N1_loop": [{"N1": {"N101": "ST", "N102": "ACME"}, "N4": {"N401": "Berlin", "N404": "DE"}}],
                "LX_loop": [{"LX": {"LX01": 1},
                             "W01": {"W0101": Decimal("2.5"), "W0102": "EA", "W0105": "SKU"}}]}
    written = codecs.encode(X12, document, sender={"qualifier": "ZZ", "id": "BUS"},
                            receiver={"qualifier": "ZZ", "id": "3PL"}, control_number=17, newlines=True)
    lines = written.decode().splitlines()
    assert lines[0].startswith("ISA*00*          *00*          *ZZ*BUS            *ZZ*3PL            *")
    assert lines[0].endswith("*U*00401*000000017*0*P*>~") and len(lines[0]) == 106
    date, clock = lines[1].split("*")[4:6]
    assert lines[1:] == [f"GS*OW*BUS*3PL*{date}*{clock}*17*X*004010~", "ST*940*0001~", "W05*N*ORD-7~",
                         "N1*ST*ACME~", "N4*Berlin***DE~", "LX*1~",
                         "W01*2.5*EA***SKU~", "SE*7*0001~", "GE*1*17~", "IEA*1*000000017~"]


def test_a_value_holding_a_separator_cannot_be_written_and_says_where():
    document = {"transaction": {"set": "940"}, "W05": {"W0501": "N", "W0502": "A*B"}}
    with pytest.raises(ValueError, match=r"X12 segment 2 \(W05\), element W0502: 'A\*B' holds the separator"):
        codecs.encode(X12, document, sender={"id": "A"}, receiver={"id": "B"}, control_number=1)


def test_several_documents_are_written_as_one_interchange_with_one_group_per_functional_id():
    documents = [{"transaction": {"set": set_id}, "W05": {"W0501": "N"}} for set_id in ("940", "940", "945")]
    written = codecs.encode(X12, documents, sender={"id": "A"}, receiver={"id": "B"}, control_number=5)
    decoded = decode_all(written)
    assert [(document["group"]["functional_id"], document["transaction"]["control_number"])
            for document in decoded] == [("OW", "0001"), ("OW", "0002"), ("SW", "0001")]


# --- 997 acknowledgements ------------------------------------------------------------------

def test_a_clean_group_of_two_sets_is_accepted_by_a_997_addressed_back():
    from esb.codecs.x12_ack import acknowledgement
    written = acknowledgement(TWO_SETS, control_number=900)
    (ack,) = decode_all(written, loops={"AK2": ["AK3", "AK4", "AK5"]})
    assert ack["transaction"]["set"] == "997" and ack["group"]["functional_id"] == "FA"
    assert (ack["interchange"]["sender"], ack["interchange"]["receiver"]) == ("RECEIVER", "SENDER")
    assert ack["AK1"][0]["AK101"] == "OW" and ack["AK1"][0]["AK102"] == "42"
    assert [(loop["AK2"][0]["AK202"], loop["AK5"][0]["AK501"]) for loop in ack["AK2_loop"]] == [
        ("0001", "A"), ("0002", "A")]
    assert without_positions(ack["AK9"]) == [{"tag": "AK9", "AK901": "A", "AK902": "2", "AK903": "2",
                                              "AK904": "2"}]


def test_a_set_with_a_wrong_count_is_rejected_and_the_group_partly_accepted():
    from esb.codecs.x12_ack import acknowledgement
    (ack,) = decode_all(acknowledgement(TWO_SETS.replace(b"SE|5|0002", b"SE|9|0002"), control_number=901))
    assert [(segment["AK501"], segment.get("AK502")) for segment in ack["AK5"]] == [("A", None), ("R", "4")]
    assert ack["AK9"][0]["AK901"] == "P" and ack["AK9"][0]["AK904"] == "1"


def test_the_997_of_a_real_940_with_a_wrong_group_control_number_rejects_the_group(samples_dir):
    from esb.codecs.x12_ack import acknowledgement
    written = acknowledgement(sample(samples_dir, "x12types_940_1edisource.edi"), control_number=902)
    (ack,) = decode_all(written)
    assert ack["AK1"][0]["AK102"] == "3317"
    assert (ack["AK9"][0]["AK901"], ack["AK9"][0]["AK905"]) == ("R", "4")


# --- the shipped mappings on the real samples, and round trips -------------------------------

PARTNER = Path(__file__).resolve().parent.parent / "mappings" / "partner"


def mapped(mapping_name: str, data: bytes, **decode_options) -> list[dict]:
    """The canonical documents a shipped mapping makes of ``data``, each valid against its schema;
    ``decode_options`` override the mapping's (control_numbers: report for real files whose
    counts are wrong)."""
    mapping = load_mapping(PARTNER / mapping_name)
    options = {**yaml.safe_load((PARTNER / mapping_name).read_text())["input"], **decode_options}
    options.pop("format")
    documents = [mapping.apply(document) for document in codecs.decode(X12, data, **options)]
    for document in documents:
        default_registry().validate(mapping.canonical_type, document)
    return documents


def test_the_940_mapping_reads_the_three_real_940s(samples_dir):
    (babelway,) = mapped("shipment_order.in.yaml", sample(samples_dir, "x12types_940_babelway.edi"))
    assert (babelway["order_number"], babelway["status"], babelway["warehouse"]) == (
        "0080215659", "open", "WH2")
    assert babelway["ship_to"]["address"] == {"lines": ["No 27 Huangping Road"], "city": "Chicago",
                                              "region": "010", "postal_code": "100096", "country": "CN"}
    assert babelway["lines"] == [{"line_number": 1, "sku": "E000169", "gtin": "000619002280",
                                  "description": "ET1929LM-7BOO-1-WH-G", "quantity": 2, "uom": "EA"}]
    mills_940 = sample(samples_dir, "x12types_940_generalmills_original_N.edi")
    (mills,) = mapped("shipment_order.in.yaml", mills_940)
    assert [(line["sku"], line["gtin"], line["quantity"], line["uom"]) for line in mills["lines"]] == [
        ("0638746000", "10725342387462", 750, "CT"), ("0143872000", "10725342438720", 170, "CT")]
    assert mills["requested_ship_date"] == "2011-12-12" and mills["carrier"] == "CPU"
    (edisource,) = mapped("shipment_order.in.yaml", sample(samples_dir, "x12types_940_1edisource.edi"),
                          control_numbers="report")
    assert edisource["warehouse"] == "WH1" and len(edisource["lines"]) == 3
    assert edisource["ship_to"]["address"]["country"] == "US"  # N4 without a country


def test_a_shipment_order_round_trips_through_a_940():
    case = PARTNER / "shipment_order.out.cases" / "replace_order_two_lines.input.json"
    order = jsonfmt.loads(case.read_bytes())
    written = load_mapping(PARTNER / "shipment_order.out.yaml").run(case.read_bytes())
    x12_bytes = load_mapping(PARTNER / "shipment_order.out.yaml").encode(next(written))
    assert x12_bytes.startswith(b"ISA*00*") and b"ST*940*0001~W05*R*SO-88231*PO-4471~" in x12_bytes
    assert list(load_mapping(PARTNER / "shipment_order.in.yaml").run(x12_bytes)) == [order]


def test_the_945_943_and_856_mappings_read_the_real_samples(samples_dir):
    simplot_945 = sample(samples_dir, "x12types_945_simplot_no_envelope.edi")
    (advice,) = mapped("shipment_confirmation.in.yaml", simplot_945, control_numbers="report")
    assert (advice["order_number"], advice["shipment_number"], advice["warehouse"]) == (
        "01766655", "1035", "WH1")
    assert [(line["order_line_number"], line["quantity_shipped"], line["lots"][0]["lot"])
            for line in advice["lines"]] == [(1000, 72, "989JAN281301"), (1000, 72, "989JAN291301"),
                                             (2000, 96, "006OCT061301")]
    (transfer,) = mapped("inbound_notice_943.in.yaml", sample(samples_dir, "stupidedi_943_AR943.edi"))
    assert transfer["lines"] == [{"line_number": 1, "sku": "ITEM123", "quantity": 100, "uom": "EA"}]
    (notice,) = mapped("inbound_notice_856.in.yaml", sample(samples_dir, "gozer_856_asn_004060.txt"),
                       control_numbers="report")
    assert (notice["notice_number"], notice["purchase_order_number"]) == ("829716", "99999817")
    assert [(line["sku"], line["gtin"], line["quantity"]) for line in notice["lines"]] == [
        ("87787D", "999999310145", 24), ("99887D", "999999311746", 6)]


_ISA = ("ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *261203*1200*U*00401*"
        "000000001*0*P*>~GS*OW*S*R*20261203*1200*1*X*004010~ST*940*0001~W05*N*123~")


@pytest.mark.parametrize(("tail", "sentence"), [
    ("", r"X12 segment 4: the input ends inside transaction set 940 0001 \(no SE\)"),
    ("ST*940*0002~", r"X12 segment 5: the transaction set 940 0001 that starts at segment 3 has no SE"),
])
def test_a_transaction_set_without_its_se_is_named_with_where_it_started(tail, sentence):
    with pytest.raises(DecodeError, match=sentence):
        list(codecs.decode("x12", (_ISA + tail).encode()))

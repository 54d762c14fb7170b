"""UN/EDIFACT: UNA service characters, the release character, character sets, several messages,
control references, writing, CONTRL, on the real sample."""

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

EDIFACT = "edifact"

TWO_MESSAGES = ("UNA:+,? '\n"
                "UNB+UNOC:3+SENDER:14+RECEIVER:14+260714:1200+REF42'\n"
                "UNH+1+DESADV:D:96A:UN'BGM+351+ASN-1+9'QTY+12:12,5'FTX+AAA+++Müller?'s ?+1?:2'UNT+5+1'\n"
                "UNH+2+DESADV:D:96A:UN'BGM+351+ASN-2+9'QTY+12:3'UNT+4+2'\n"
                "UNZ+2+REF42'\n").encode("iso8859-1")


def decode_all(data: bytes, **options):
    return list(codecs.decode(EDIFACT, data, **options))


def sample(samples_dir) -> bytes:
    return (samples_dir / "edifact" / "pydifact_ORDERS_D96A_minimal.edi").read_bytes()


def without_positions(segments):
    return [{key: value for key, value in segment.items() if key != "position"} for segment in segments]


# --- the real sample -------------------------------------------------------------------------

def test_the_orders_sample_without_unz_is_refused_by_default_and_reported_on_request(samples_dir):
    with pytest.raises(DecodeError, match=r"EDIFACT segment 12: the input ends before the UNZ"):
        decode_all(sample(samples_dir))
    (document,) = decode_all(sample(samples_dir), control_numbers="report", loops={"LIN": ["QTY", "PRI"]})
    assert document["interchange"]["syntax"] == "UNOC" and document["interchange"]["sender"] == "SENDERID"
    assert [problem["code"] for problem in document["interchange"]["problems"]] == ["13"]
    assert document["message"]["type"] == "ORDERS" and document["message"]["release"] == "96A"
    assert document["BGM"][0]["BGM02"] == ["PO123456"]
    (line,) = document["LIN_loop"]
    assert line["LIN"][0]["LIN03"] == ["ABC123", "IN"]
    assert line["QTY"][0]["QTY01"] == ["21", "10"]
    assert line["PRI"][0]["PRI01"] == ["AAA", "25.00"]


# --- service characters, release, character sets -------------------------------------------

def test_una_declares_a_decimal_comma_and_the_release_character_is_taken_out():
    first, second = decode_all(TWO_MESSAGES)
    assert first["interchange"]["service_characters"]["decimal_mark"] == ","
    assert first["QTY"][0]["QTY01"] == ["12", "12,5"]
    assert first["FTX"][0]["FTX04"] == ["Müller's +1:2"]  # UNOC is ISO 8859-1
    assert second["BGM"][0]["BGM02"] == ["ASN-2"]
    assert [document["message"]["reference"] for document in (first, second)] == ["1", "2"]


def test_other_service_characters_are_whatever_the_una_says():
    data = b"UNA|*.#~!UNB*UNOA|3*A*B*260714|1200*9!UNH*1*INVRPT|D|96A|UN!QTY*145|7#*X!UNT*3*1!UNZ*1*9!"
    (document,) = decode_all(data)
    assert document["QTY"][0]["QTY01"] == ["145", "7*X"]


def test_a_character_unoa_does_not_have_is_named_with_its_segment_and_element():
    data = TWO_MESSAGES.replace(b"UNOC", b"UNOA")
    with pytest.raises(DecodeError, match=r"EDIFACT segment 6 \(FTX\), element FTX04: .* holds 'ü', which "
                                          r"UNOA does not have"):
        decode_all(data)
    assert len(decode_all(data, strict_character_set=False, encoding="iso8859-1")) == 2


def test_a_stream_read_in_small_chunks_gives_the_same_messages(monkeypatch):
    from esb.codecs import edi
    monkeypatch.setattr(edi, "CHUNK_CHARS", 5)
    assert decode_all(io.BytesIO(TWO_MESSAGES)) == decode_all(TWO_MESSAGES)


def test_a_bom_and_crlf_are_ignored():
    data = b"\xef\xbb\xbf" + TWO_MESSAGES.replace(b"'\n", b"'\r\n").decode("iso8859-1").encode("utf-8")
    assert len(decode_all(data)) == 2


# --- control references ----------------------------------------------------------------------

def test_a_wrong_segment_count_names_the_unt_and_its_element():
    with pytest.raises(DecodeError, match=r"EDIFACT segment 11 \(UNT\), element UNT01: UNT01 says 5 "
                                          r"segments, the message has 4"):
        decode_all(TWO_MESSAGES.replace(b"UNT+4+2", b"UNT+5+2"))


def test_a_wrong_interchange_reference_is_reported_when_asked():
    documents = decode_all(TWO_MESSAGES.replace(b"UNZ+2+REF42", b"UNZ+2+REF43"), control_numbers="report")
    assert documents[0]["interchange"]["problems"][0]["code"] == "28"


def test_a_message_type_the_mapping_does_not_read_is_named():
    with pytest.raises(DecodeError, match=r"UNH02: this is a DESADV message, the mapping reads ORDERS"):
        decode_all(TWO_MESSAGES, message_types=["ORDERS"])


def test_garbage_is_named_as_no_segment_tag():
    with pytest.raises(DecodeError, match=r"EDIFACT segment 3: 'hello' does not start with a segment tag"):
        decode_all(b"UNB+UNOC:3+A+B+1:1+1'UNH+1+X:D:96A:UN'hello'")


def test_edifact_read_as_xml_says_what_it_is():
    with pytest.raises(DecodeError, match="this is EDIFACT, the mapping reads XML"):
        list(codecs.decode("xml", TWO_MESSAGES))


# --- writing and CONTRL ------------------------------------------------------------------------

def test_decoded_messages_written_back_decode_to_the_same_segments():
    documents = decode_all(TWO_MESSAGES)
    again = decode_all(codecs.encode(EDIFACT, documents))
    assert [without_positions(document["segments"]) for document in again] == [
        without_positions(document["segments"]) for document in documents]
    assert again[0]["interchange"]["service_characters"] == documents[0]["interchange"]["service_characters"]


def test_the_sample_written_back_gets_its_unz(samples_dir):
    (document,) = decode_all(sample(samples_dir), control_numbers="report")
    (again,) = decode_all(codecs.encode(EDIFACT, document))
    assert again["interchange"]["problems"] == []
    assert without_positions(again["segments"]) == without_positions(document["segments"])


def test_decimals_are_written_with_the_decimal_mark_and_service_characters_released():
    document = {"message": {"type": "INVRPT"}, "QTY": {"QTY01": ["145", Decimal("12.5")]},
                "FTX": {"FTX01": "AAA", "FTX04": "a+b:c?d'e"}}
    written = codecs.encode(EDIFACT, document, sender={"id": "A"}, recipient={"id": "B"}, control_reference=7,
                            service_characters={"decimal_mark": ","}, newlines=True).decode("iso8859-1")
    assert written.splitlines()[0] == "UNA:+,? '"
    assert "QTY+145:12,5'" in written and "FTX+AAA+++a?+b?:c??d?'e'" in written
    (again,) = decode_all(written.encode("iso8859-1"))
    assert again["FTX"][0]["FTX04"] == ["a+b:c?d'e"]


def test_a_character_the_syntax_cannot_encode_is_an_error():
    document = {"message": {"type": "INVRPT"}, "FTX": {"FTX01": "AAA", "FTX04": "仓库"}}
    with pytest.raises(ValueError, match=r"cannot be written in UNOC .* segment 2 \(FTX\)"):
        codecs.encode(EDIFACT, document, sender={"id": "A"}, recipient={"id": "B"}, control_reference=7)


def test_contrl_acknowledges_each_message_and_rejects_a_wrong_one():
    from esb.codecs.edifact_ack import acknowledgement
    bad = TWO_MESSAGES.replace(b"UNT+4+2", b"UNT+9+2")
    (contrl,) = decode_all(acknowledgement(bad, control_reference=99), loops={"UCM": []})
    assert contrl["message"]["type"] == "CONTRL"
    assert (contrl["interchange"]["sender"], contrl["interchange"]["recipient"]) == ("RECEIVER", "SENDER")
    assert contrl["UCI"][0]["UCI01"] == ["REF42"] and contrl["UCI"][0]["UCI04"] == ["7"]
    assert [(loop["UCM"][0]["UCM01"], loop["UCM"][0]["UCM03"], loop["UCM"][0].get("UCM04"))
            for loop in contrl["UCM_loop"]] == [(["1"], ["7"], None), (["2"], ["4"], ["29"])]


def test_contrl_of_the_sample_rejects_the_interchange_without_unz(samples_dir):
    from esb.codecs.edifact_ack import acknowledgement
    (contrl,) = decode_all(acknowledgement(sample(samples_dir), control_reference=100))
    assert contrl["UCI"][0]["UCI04"] == ["4"] and contrl["UCI"][0]["UCI05"] == ["13"]


# --- the shipped mappings on the real sample, and a round trip --------------------------------

PARTNER = Path(__file__).resolve().parent.parent / "mappings" / "partner"


def test_the_orders_mapping_reads_the_real_orders_sample(samples_dir):
    mapping = load_mapping(PARTNER / "purchase_order_orders.in.yaml")
    options = yaml.safe_load((PARTNER / "purchase_order_orders.in.yaml").read_text())["input"]
    options.pop("format")
    (document,) = codecs.decode(EDIFACT, sample(samples_dir), **options, control_numbers="report")
    order = mapping.apply(document)
    default_registry().validate("purchase_order", order)
    assert order == {"order_number": "PO123456", "status": "open", "order_date": "2025-03-22",
                     "supplier": {"id": "987654321"}, "warehouse": "WH1",
                     "lines": [{"line_number": 1, "sku": "ABC123", "quantity": 10, "uom": "EA"}]}


def test_a_purchase_order_round_trips_through_orders_with_a_decimal_comma():
    case = PARTNER / "purchase_order_orders.out.cases" / "two_lines.input.json"
    order = jsonfmt.loads(case.read_bytes())
    out = load_mapping(PARTNER / "purchase_order_orders.out.yaml")
    edifact_bytes = out.encode(next(out.run(case.read_bytes())))
    assert edifact_bytes.startswith(b"UNA:+,? 'UNB+UNOC:3+") and b"QTY+21:12,5:KGM'" in edifact_bytes
    assert "Müller".encode("iso8859-1") in edifact_bytes  # UNOC is ISO 8859-1
    assert list(load_mapping(PARTNER / "purchase_order_orders.in.yaml").run(edifact_bytes)) == [order]


_ORDERS = "UNA:+.? 'UNB+UNOC:3+S+R+261203:1200+1'UNH+1+ORDERS:D:96A:UN'BGM+220+1+9'"


@pytest.mark.parametrize(("tail", "sentence"), [
    ("", r"EDIFACT segment 4: the input ends inside message 1 \(no UNT\)"),
    ("UNH+2+ORDERS:D:96A:UN'", r"EDIFACT segment 5: the message 1 that starts at segment 3 has no UNT"),
])
def test_a_message_without_its_unt_is_named_with_where_it_started(tail, sentence):
    with pytest.raises(DecodeError, match=sentence):
        list(codecs.decode("edifact", (_ORDERS + tail).encode()))

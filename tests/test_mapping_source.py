"""Source metadata in mapping expressions: source_file(), source_line() (the line in the file,
whether the file source sends the file whole, per record or per group), received_at(), now()."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.flatfile import FileSource
from esb.envelope import parse_rfc3339
from esb.errors import DecodeError, MappingError
from esb.mapping import SourceInfo, load_mapping
from esb.pipeline import InboundPipeline
from esb.plugins import Accepted, RawMessage, SourceContext
from esb.retry import RetryPolicy
from esb.routes import Destination, Endpoint, Route

RECEIPTS_CSV = b"receipt,sku,qty\nR1,A,1\nR1,B,2\n\nR1,C,3\nR2,D,4\n"
"""Line 1 the header, a blank line 4 inside receipt R1."""

LINES_OF_RECEIPTS = {"A": 2, "B": 3, "C": 5, "D": 6}


@pytest.fixture
def write_mapping(tmp_path):
    def write(text: str) -> Path:
        path = tmp_path / "source.in.yaml"
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write


@pytest.fixture
def receipts_mapping(write_mapping):
    return load_mapping(write_mapping("""
        direction: in
        canonical_type: goods_receipt
        input: {format: csv, group_by: receipt}
        fields:
          receipt_number: key
          file: {from: "source_file()", required: false}
          line: "source_line()"
          received: "received_at()"
          lines:
            each: records
            fields: {sku: sku, line: "source_line(@)", quantity: {from: qty, type: integer}}
    """))


def lines_by_sku(documents: list[dict]) -> dict[str, int]:
    return {line["sku"]: line["line"] for document in documents for line in document["lines"]}


# --- the functions -----------------------------------------------------------------------

def test_the_functions_give_the_file_the_lines_and_the_times(receipts_mapping):
    source = SourceInfo(file="GR_1.csv", received_at="2026-11-30T06:00:00.000+00:00")
    documents = list(receipts_mapping.run(RECEIPTS_CSV, source))
    assert [(d["receipt_number"], d["file"], d["line"], d["received"]) for d in documents] == [
        ("R1", "GR_1.csv", 2, "2026-11-30T06:00:00.000+00:00"),
        ("R2", "GR_1.csv", 6, "2026-11-30T06:00:00.000+00:00")]
    assert lines_by_sku(documents) == LINES_OF_RECEIPTS


def test_without_source_metadata_the_file_is_null_and_received_at_is_when_mapping_began(receipts_mapping):
    before = datetime.now(UTC).replace(microsecond=0)  # received_at() has milliseconds
    (first, _) = receipts_mapping.run(RECEIPTS_CSV)
    assert "file" not in first
    assert before <= parse_rfc3339(first["received"]) <= datetime.now(UTC)


def test_now_is_one_instant_for_every_field_of_a_document(write_mapping):
    mapping = load_mapping(write_mapping("""
        direction: in
        canonical_type: goods_receipt
        input: {format: json}
        fields:
          a: "now()"
          b: "now()"
          today: {from: "now()", type: date}
    """))
    result = mapping.apply({})
    assert result["a"] == result["b"] and parse_rfc3339(result["a"]).tzinfo is not None
    assert result["today"] == parse_rfc3339(result["a"]).date().isoformat()


def test_a_part_of_a_file_counts_its_records_on_the_files_lines(receipts_mapping):
    part = b"receipt,sku,qty\nR2,D,4\n"  # what the file source sends for line 6 alone
    (document,) = receipts_mapping.run(part, SourceInfo(file="GR_1.csv", line=6))
    assert document["line"] == 6 and lines_by_sku([document]) == {"D": 6}


def test_errors_in_a_part_of_a_file_name_the_files_lines(receipts_mapping, write_mapping):
    part = b"receipt,sku,qty\nR2,D,four\n"
    with pytest.raises(MappingError, match="lines\\[0\\].quantity: an integer .*source line 41"):
        list(receipts_mapping.run(part, SourceInfo(file="GR_1.csv", line=41)))
    with pytest.raises(DecodeError, match="line 42: receipt R1 appears again"):
        list(receipts_mapping.run(b"receipt,sku,qty\nR1,A,1\nR2,B,1\nR1,C,1\n", SourceInfo(line=40)))
    where = r"\(counted in the part of GR_1.csv whose first record is on line 41\)"
    with pytest.raises(DecodeError, match=r"CSV line 3: 2 fields.*" + where):
        list(receipts_mapping.run(b"receipt,sku,qty\nR2,D,4\nR2,E\n", SourceInfo(file="GR_1.csv", line=41)))


def test_a_json_document_has_no_line_unless_the_source_gives_one(write_mapping):
    mapping = load_mapping(write_mapping("""
        direction: in
        canonical_type: goods_receipt
        input: {format: json}
        fields: {line: {from: "source_line()", required: false}, file: "source_file()"}
    """))
    assert mapping.apply({}, SourceInfo(file="a.json")) == {"file": "a.json"}
    assert mapping.apply({}, SourceInfo(file="a.json", line=7)) == {"file": "a.json", "line": 7}


# --- from the file source, through the pipeline ----------------------------------------------

class Submitted:
    """The runtime's submit without the broker: the route's real pipeline prepares each message."""

    def __init__(self, mapping_path: Path):
        route = Route(name="files", source=Endpoint("file", {}), retry=RetryPolicy(),
                      destinations=(Destination("out", Endpoint("file", {"dir": "out"})),))
        self.pipeline = InboundPipeline(route, mapping=load_mapping(mapping_path), validate=lambda *a: None,
                                        source="wms")
        self.envelopes = []

    def submit(self, raw: RawMessage, *, idempotency_key: str | None = None) -> Accepted:
        prepared = self.pipeline.prepare(raw.body, idempotency_key=idempotency_key, metadata=raw.metadata)
        self.envelopes.extend(message.envelope for message in prepared)
        return Accepted(tuple(message.envelope.id for message in prepared))

    def dead_letter(self, raw: RawMessage, error: BaseException) -> None:
        raise AssertionError(f"refused: {error}")


def poll_once(tmp_path: Path, mapping_path: Path, name: str, content: bytes, **options) -> list:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / name).write_bytes(content)
    bus = Submitted(mapping_path)
    source = FileSource(Endpoint("file", {"dir": str(inbox), "min_age": 0, **options}), None,
                        "files")
    source.start(SourceContext(route="files", submit=bus.submit, add_url_rule=lambda *a, **k: None,
                               data_dir=tmp_path / "data", dead_letter=bus.dead_letter))
    source.poll()
    source.stop()
    assert (inbox / "processed" / name).exists()
    return bus.envelopes


@pytest.mark.parametrize("per", [{"per": "file"}, {"per": "record"}, {"per": "group", "group_by": "receipt"}])
def test_source_line_is_the_line_in_the_file_whatever_the_file_source_sends(tmp_path, receipts_mapping, per):
    envelopes = poll_once(tmp_path, Path(receipts_mapping.path), "GR_7.csv", RECEIPTS_CSV, **per)

    documents = [envelope.payload for envelope in envelopes]
    assert lines_by_sku(documents) == LINES_OF_RECEIPTS
    assert {document["file"] for document in documents} == {"GR_7.csv"}
    assert all(e.payload["received"] == e.received_at for e in envelopes)  # the envelope's own time


def test_fixed_width_groups_count_the_files_lines_too(tmp_path, write_mapping):
    mapping = write_mapping("""
        direction: in
        canonical_type: goods_receipt
        input:
          format: fixedwidth
          group_starts_with: H
          allow_short_lines: true
          record_type: {start: 1, length: 1}
          records:
            H: [{name: receipt, start: 2, length: 5}]
            L: [{name: sku, start: 2, length: 5}]
        fields:
          receipt_number: header.receipt
          line: "source_line()"
          lines: {each: "records[?__type__=='L']", fields: {sku: sku, line: "source_line(@)"}}
    """)
    content = b"HGR001\nLA1\n\nLB2\nHGR002\nLC3\n"
    envelopes = poll_once(tmp_path, mapping, "GR.txt", content, format="fixedwidth", per="group",
                          group_starts_with="H")
    documents = [envelope.payload for envelope in envelopes]
    assert [(d["receipt_number"], d["line"]) for d in documents] == [("GR001", 1), ("GR002", 5)]
    assert lines_by_sku([e.payload for e in envelopes]) == {"A1": 2, "B2": 4, "C3": 6}

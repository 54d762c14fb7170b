"""The flat-file sink: atomic files named from a template, encodings and line ends, batches."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.flatfile import FileSink
from esb.envelope import Envelope
from esb.errors import Permanent
from esb.routes import Endpoint


def envelope(number: str = "GR-1", **payload) -> Envelope:
    return Envelope(type="goods_receipt", source="wms", correlation_id=number,
                    payload={"receipt_number": number, "warehouse": {"code": "WH1"}, **payload})


def make_sink(directory: Path, **options) -> FileSink:
    return FileSink(Endpoint("file", {"dir": str(directory), **options}))


def visible_files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if not path.name.startswith("."))


def test_each_message_is_one_file_named_from_the_template_and_nothing_temporary_is_left(tmp_path):
    sink = make_sink(tmp_path, name_template="GR_{receipt_number}_{payload.warehouse.code}_"
                                             "{timestamp:%Y%m%d}.{ext}")
    message = envelope()

    name = sink.deliver(message, b'{"a": 1}\n', "application/json")

    assert name == f"GR_GR-1_WH1_{datetime.now(UTC):%Y%m%d}.csv"
    assert os.listdir(tmp_path) == [name]
    assert (tmp_path / name).read_bytes() == b'{"a": 1}\n'


def test_the_default_name_carries_the_type_and_message_id(tmp_path):
    message = envelope()

    name = make_sink(tmp_path, format="json").deliver(message, b"{}", "application/json")

    assert name == f"goods_receipt_{message.id}.json"


def test_a_redelivered_message_writes_no_second_file_and_another_one_gets_a_number(tmp_path):
    sink = make_sink(tmp_path, name_template="{correlation_id}.{ext}")

    first = sink.deliver(envelope(), b"one\n", "text/csv")
    again = sink.deliver(envelope(), b"one\n", "text/csv")
    other = sink.deliver(envelope(), b"two\n", "text/csv")

    assert (first, again, other) == ("GR-1.csv", "GR-1.csv", "GR-1-2.csv")
    assert (tmp_path / "GR-1-2.csv").read_bytes() == b"two\n"


def test_values_that_would_leave_the_directory_are_made_safe(tmp_path):
    sink = make_sink(tmp_path, name_template="{correlation_id}.{ext}")

    name = sink.deliver(envelope("../../etc/passwd"), b"x", "text/csv")

    assert "/" not in name and (tmp_path / name).exists()


def test_the_body_is_re_encoded_to_gbk_with_crlf_line_ends(tmp_path):
    sink = make_sink(tmp_path, encoding="gbk", line_ending="crlf")

    name = sink.deliver(envelope(), "sku,名称\n1,铸铁砧\r\n".encode(), "text/csv")

    assert (tmp_path / name).read_bytes() == "sku,名称\r\n1,铸铁砧\r\n".encode("gbk")


def test_lf_line_ends_are_written_as_they_are_in_utf8(tmp_path):
    name = make_sink(tmp_path).deliver(envelope(), b"a\r\nb\r\n", "text/csv")

    assert (tmp_path / name).read_bytes() == b"a\nb\n"


def test_a_character_the_target_encoding_lacks_is_a_permanent_error(tmp_path):
    sink = make_sink(tmp_path, encoding="cp1252")

    with pytest.raises(Permanent, match="cannot be written in cp1252"):
        sink.deliver(envelope(), "铸铁".encode(), "text/csv")
    assert os.listdir(tmp_path) == []


def test_a_body_already_encoded_by_the_mapping_is_not_encoded_twice(tmp_path):
    with pytest.raises(Permanent, match="not UTF-8"):
        make_sink(tmp_path, encoding="gbk").deliver(envelope(), "铸铁".encode("gbk"), "text/csv")


def test_a_missing_template_field_is_a_permanent_error(tmp_path):
    with pytest.raises(Permanent, match="no 'lot'"):
        make_sink(tmp_path, name_template="{lot}.{ext}").deliver(envelope(), b"x", "text/csv")


def test_route_in_the_template_needs_the_route_name(tmp_path):
    with pytest.raises(ValueError, match="route"):
        make_sink(tmp_path, name_template="{route}_{id}.{ext}")
    sink = FileSink(Endpoint("file", {"dir": str(tmp_path), "name_template": "{route}_{id}"}), None,
                    route_name="wms-receipts")
    assert sink.deliver(envelope(), b"x", "text/csv").startswith("wms-receipts_")


# --- batches -----------------------------------------------------------------------------------

def test_messages_within_batch_interval_share_one_file_with_one_csv_header(tmp_path):
    sink = make_sink(tmp_path, batch_interval=60, name_template="batch_{timestamp}_{id}.{ext}")

    names = {sink.deliver(envelope(str(n)), b"sku,qty\r\nA,%d\r\n" % n, "text/csv") for n in range(3)}
    assert visible_files(tmp_path) == []  # still open, under a dot-name, already on disk
    [open_batch] = [p for p in tmp_path.iterdir() if ".batch-" in p.name]
    assert open_batch.read_bytes() == b"sku,qty\nA,0\nA,1\nA,2\n"
    sink.close()

    [name] = names
    assert visible_files(tmp_path) == [name]
    assert (tmp_path / name).read_bytes() == b"sku,qty\nA,0\nA,1\nA,2\n"


def test_a_batch_is_closed_when_its_interval_has_passed(tmp_path):
    sink = make_sink(tmp_path, batch_interval=0.2, format="json")

    sink.deliver(envelope(), b'{"n": 1}\n', "application/json")
    deadline = time.monotonic() + 5
    while not visible_files(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    sink.deliver(envelope(), b'{"n": 2}\n', "application/json")
    sink.close()

    files = visible_files(tmp_path)
    assert len(files) == 2
    assert sorted((tmp_path / f).read_bytes() for f in files) == [b'{"n": 1}\n', b'{"n": 2}\n']


def test_a_batch_left_by_a_stopped_worker_is_finished_at_the_next_start(tmp_path):
    abandoned = tmp_path / ".orders_1.csv.batch-99999-abcdef"
    abandoned.write_bytes(b"sku\nA\n")
    old = time.time() - 3600
    os.utime(abandoned, (old, old))

    make_sink(tmp_path, batch_interval=60).close()

    assert visible_files(tmp_path) == ["orders_1.csv"]
    assert (tmp_path / "orders_1.csv").read_bytes() == b"sku\nA\n"


def test_a_received_at_with_a_strftime_form_names_the_file_from_the_message_time(tmp_path):
    from types import SimpleNamespace

    sink = FileSink(Endpoint("file", {"dir": str(tmp_path),
                                      "name_template": "{document_number}_{received_at:%Y%m%d%H%M%S}.edi"}))
    envelope = SimpleNamespace(id="1", type="t", correlation_id="c", causation_id=None, source="s",
                               schema_version=1, occurred_at=None, received_at="2026-12-03T07:45:01.5Z",
                               payload={"document_number": "SO-1"})

    assert sink.file_name(envelope, datetime.now(UTC)) == "SO-1_20261203074501.edi"

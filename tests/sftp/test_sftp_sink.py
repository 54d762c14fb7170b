"""The SFTP sink on a real OpenSSH server: a temporary name then a rename, the name from the
message, no overwrite unless the route says so, a redelivery taken as done, the server down as a
retryable failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.sftp import SftpSink
from esb.envelope import Envelope
from esb.errors import Permanent, Retryable
from esb.routes import Endpoint

TEMPLATE = "{document_number}_{received_at:%Y%m%d%H%M%S}.edi"


def envelope(number: str = "SO-1001") -> Envelope:
    return Envelope(type="shipping_order", source="wms", payload={"document_number": number},
                    received_at="2026-12-03T07:45:01Z")


def make_sink(sshd, folder: Path, **options) -> SftpSink:
    endpoint = Endpoint("sftp", {"system": "partner", "dir": str(folder), "format": "x12",
                                 "name_template": TEMPLATE, **options})
    return SftpSink(endpoint, sshd.settings())


def test_a_message_is_written_under_a_name_from_the_message_and_no_temporary_file_is_left(sshd, tmp_path):
    outbox = tmp_path / "to-partner"

    name = make_sink(sshd, outbox).deliver(envelope(), b"ISA*00*~\n", "application/edi-x12")

    assert name == "SO-1001_20261203074501.edi"
    assert (outbox / name).read_bytes() == b"ISA*00*~\n"
    assert sorted(path.name for path in outbox.iterdir()) == [name]  # no .part left behind


def test_a_name_taken_with_other_content_is_refused_unless_the_route_allows_overwriting(sshd, tmp_path):
    outbox = tmp_path / "to-partner"
    make_sink(sshd, outbox).deliver(envelope(), b"first\n", "text/plain")

    with pytest.raises(Permanent, match="already exists .* not overwritten"):
        make_sink(sshd, outbox).deliver(envelope(), b"second\n", "text/plain")
    assert (outbox / "SO-1001_20261203074501.edi").read_bytes() == b"first\n"

    make_sink(sshd, outbox, overwrite=True).deliver(envelope(), b"second\n", "text/plain")
    assert (outbox / "SO-1001_20261203074501.edi").read_bytes() == b"second\n"
    assert len(list(outbox.iterdir())) == 1


def test_the_same_message_delivered_twice_is_one_file(sshd, tmp_path):
    outbox = tmp_path / "to-partner"
    sink = make_sink(sshd, outbox)

    sink.deliver(envelope(), b"same\n", "text/plain")
    sink.deliver(envelope(), b"same\n", "text/plain")  # a redelivery after a lost ack

    assert [path.read_bytes() for path in outbox.iterdir()] == [b"same\n"]


def test_a_server_that_is_down_is_a_retryable_failure_named_in_readiness(sshd, tmp_path):
    sink = make_sink(sshd, tmp_path / "to-partner")
    sshd.kill()

    with pytest.raises(Retryable, match="sftp .*127.0.0.1"):
        sink.deliver(envelope(), b"x\n", "text/plain")
    assert "unreachable" in sink.readiness() or "lost" in sink.readiness()

"""The SFTP source on a real OpenSSH server: files claimed, submitted and moved on the server; the
server killed in the middle of a file; a refused key and a changed host key (one line each); a
10,000-record file streamed in constant memory."""

from __future__ import annotations

import logging
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from adapters.flatfile.store import StoreUnavailable
from adapters.sftp import SftpConnection, SftpSource
from esb.plugins import Accepted
from esb.routes import Endpoint
from tests.sftp.server import make_key
from tests.test_flatfile_source import Bus

ROW = b"SKU-%06d,%d," + b"x" * 150 + b"\n"


def write_stock_file(path: Path, records: int) -> Path:
    with open(path, "wb") as handle:
        handle.write(b"sku,qty,description\n")
        for number in range(records):
            handle.write(ROW % (number, number))
    return path


def make_source(sshd, inbox: Path, bus: Bus, settings: dict | None = None, **options) -> SftpSource:
    endpoint = Endpoint("sftp", {"system": "partner", "dir": str(inbox), "min_age": 0, **options})
    source = SftpSource(endpoint, settings or sshd.settings(), "partner-files")
    source.start(bus.context(inbox.parent / "data"))
    return source


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    """The folder the server shows (sshd runs as this user, so the test can drop files in it)."""
    folder = tmp_path / "outbound-from-partner"
    folder.mkdir()
    return folder


def test_a_file_on_the_server_becomes_one_message_per_record_and_is_moved_to_processed_there(sshd, inbox):
    bus = Bus("stock_lines.in.yaml")
    write_stock_file(inbox / "stock_1.csv", 3)

    make_source(sshd, inbox, bus, per="record").poll()

    assert [document["sku"] for document in bus.documents] == ["SKU-000000", "SKU-000001", "SKU-000002"]
    assert [metadata["line"] for _, _, metadata in bus.published] == [2, 3, 4]
    assert (inbox / "processed" / "stock_1.csv").exists() and not (inbox / "stock_1.csv").exists()
    assert not list((inbox / ".claimed").iterdir()) and not list((inbox / ".progress").iterdir())


def test_a_bad_record_goes_to_error_on_the_server_with_its_report(sshd, inbox):
    bus = Bus("stock_lines.in.yaml")
    (inbox / "bad.csv").write_bytes(b"sku,qty,description\nA1,1,one\nA2,two,bad\n")

    make_source(sshd, inbox, bus, per="record").poll()

    assert [document["sku"] for document in bus.documents] == ["A1"] and len(bus.dead) == 1
    assert (inbox / "error" / "bad.csv").exists() and (inbox / "error" / "bad.csv.error.json").exists()


def test_the_server_killed_in_the_middle_of_a_file_loses_and_doubles_no_record(sshd, inbox):
    records = 3000
    write_stock_file(inbox / "big.csv", records)
    bus = Bus()
    real_submit = bus.submit
    killing, killed = threading.Lock(), threading.Event()

    def submit(raw, idempotency_key=None):
        # Parts are submitted from the window's threads at once: ">=" under a lock, once, since two
        # of them may step past an exact count together.
        with killing:
            if bus.calls >= 1000 and not killed.is_set():
                killed.set()
                sshd.kill()  # the server dies while the source is inside the file
        return real_submit(raw, idempotency_key=idempotency_key)

    bus.submit = submit
    source = make_source(sshd, inbox, bus, per="record")
    source.poll()
    stopped_at = len(bus.published)
    assert stopped_at < records and (inbox / ".claimed").exists() and not (inbox / "error").exists()
    assert source.readiness() is not None and "sftp" in source.readiness()

    sshd.start()
    deadline = time.monotonic() + 60  # each poll is one attempt (the reconnect backoff is 0.05 s in the
    while time.monotonic() < deadline:  # tests); a loaded machine may take seconds to start sshd
        source.poll()
        if (inbox / "processed" / "big.csv").exists():
            break
        time.sleep(0.05)

    keys = [key for key, _, _ in bus.published]
    assert len(keys) == records and len(set(keys)) == records
    # in file order once sorted: parts in flight may be published out of order (in_flight)
    assert sorted(metadata["line"] for _, _, metadata in bus.published) == list(range(2, records + 2))
    assert source.readiness() is None and not (inbox / "error").exists()


def test_a_key_the_server_refuses_is_one_line_without_a_traceback(sshd, inbox, tmp_path, caplog):
    stranger = make_key(tmp_path / "stranger")
    bus = Bus()
    (inbox / "x.csv").write_bytes(b"sku,qty\nA,1\n")
    caplog.set_level(logging.WARNING)

    source = make_source(sshd, inbox, bus, sshd.settings(key_file=str(stranger)))
    source.poll()

    refused = [record for record in caplog.records if "login refused" in record.getMessage()]
    assert len(refused) == 1 and refused[0].exc_info is None and "\n" not in refused[0].getMessage()
    assert "login refused with the key stranger" in source.readiness()
    assert (inbox / "x.csv").exists() and not bus.published


def test_a_changed_host_key_is_refused_with_both_fingerprints(sshd, tmp_path):
    other = make_key(tmp_path / "other_host")
    public = Path(f"{other}.pub").read_text().split()
    known_hosts = tmp_path / "known_hosts_changed"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {public[0]} {public[1]}\n")

    connection = SftpConnection(sshd.settings(known_hosts=str(known_hosts)))
    with pytest.raises(StoreUnavailable) as refused:
        connection.sftp()

    assert "host key CHANGED" in str(refused.value) and "refused" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_an_unknown_host_key_is_refused_never_accepted_on_first_sight(sshd, tmp_path):
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")

    connection = SftpConnection(sshd.settings(known_hosts=str(empty)))
    with pytest.raises(StoreUnavailable, match="is not in .*; refused"):
        connection.sftp()
    assert empty.read_text() == ""


def test_a_30000_record_file_is_streamed_from_the_server_in_constant_memory(sshd, inbox):
    # 30,000: the window of parts in flight (64 threads, ~0.5 MB whatever the file) fits under size / 4
    size = write_stock_file(inbox / "many.csv", 30_000).stat().st_size
    count = 0

    def submit(raw, idempotency_key=None):
        nonlocal count
        count += 1
        return Accepted(("x",))

    bus = Bus()
    bus.submit = submit
    source = make_source(sshd, inbox, bus, per="record")
    tracemalloc.start()
    source.poll()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert count == 30_000 and (inbox / "processed" / "many.csv").exists()
    assert peak < size / 4, f"peak {peak} bytes for a {size}-byte file"

"""The file source against hostile and careless input (issue 21): one bad file never stops the
poll, odd names work, files that carry nothing are reported, half-written files are left alone,
and what is not a regular file is moved aside unopened."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.flatfile import FileSource, LocalDirectory
from esb.routes import Endpoint
from tests.test_flatfile_source import Bus, make_source, report_of

GOOD = b"sku,qty,description\nA1,1,one\nA2,2,two\n"
HOSTILE_QUANTITIES = [b"1e400", b"-1e400", b"1e999999999", b"9" * 30, b"9" * 4000, b"1e-400", b"NaN"]


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    directory = tmp_path / "inbox"
    directory.mkdir()
    return directory


def names_in(folder: Path) -> list[str]:
    """The names in `folder`, without the source's own .claimed and .progress."""
    if not folder.exists():
        return []
    return sorted(path.name for path in folder.iterdir() if path.name not in (".claimed", ".progress"))


def good_skus(bus: Bus) -> list[str]:
    return [document["sku"] for document in bus.documents]


# --- one bad file never stops the poll ------------------------------------------------------------

@pytest.mark.parametrize("per", ["file", "record"])
def test_a_30_digit_quantity_sends_its_file_to_error_and_the_next_file_is_delivered(inbox, per):
    bus = Bus("stock_lines.in.yaml")
    (inbox / "a_bad.csv").write_bytes(b"sku,qty,description\nA9," + b"9" * 30 + b",x\n")
    (inbox / "b_good.csv").write_bytes(GOOD)

    make_source(inbox, bus, per=per).poll()

    assert good_skus(bus) == ["A1", "A2"]
    assert names_in(inbox / "processed") == ["b_good.csv"]
    [problem] = report_of(inbox, "a_bad.csv")["problems"]
    assert problem["dead_lettered"] and (per == "file" or problem["line"] == 2)
    assert bus.set_aside == ["refused"] and len(bus.dead) == 1
    assert names_in(inbox / ".claimed") == []


def test_a_230_byte_name_is_claimed_processed_and_reported_within_the_name_limit(inbox):
    bus = Bus("stock_lines.in.yaml")
    good, bad = "g" * 226 + ".csv", "b" * 226 + ".csv"
    (inbox / good).write_bytes(GOOD)
    (inbox / bad).write_bytes(b"sku,qty,description\nA1,one,x\n")

    make_source(inbox, bus, per="record").poll()

    assert good_skus(bus) == ["A1", "A2"] and names_in(inbox / "processed") == [good]
    assert names_in(inbox / "error") == [bad, bad + ".error.json"]
    assert names_in(inbox) == ["error", "processed"]


def test_a_name_already_taken_in_error_gets_a_time_and_still_fits_the_name_limit(inbox):
    bus = Bus("stock_lines.in.yaml")
    name = "b" * 240 + ".csv"
    source = make_source(inbox, bus)
    for _ in range(2):
        (inbox / name).write_bytes(b"")
        source.poll()

    moved = names_in(inbox / "error")
    assert len(moved) == 4 and all(len(os.fsencode(moved_name)) <= 255 for moved_name in moved)


def test_a_name_with_invalid_utf8_bytes_is_delivered_and_shown_escaped(inbox):
    bus = Bus("stock_lines.in.yaml")
    good, bad = os.fsdecode(b"GR_\xff\xfe.csv"), os.fsdecode(b"GR_\xc3(.csv")
    (inbox / good).write_bytes(GOOD)
    (inbox / bad).write_bytes(b"sku,qty,description\nA1,one,x\n")

    make_source(inbox, bus, per="record").poll()

    assert good_skus(bus) == ["A1", "A2"]
    assert {metadata["file"] for _, _, metadata in bus.published} == {"GR_\\xff\\xfe.csv"}
    assert names_in(inbox / "processed") == [good]
    report = json.loads((inbox / "error" / (bad + ".error.json")).read_bytes())
    assert report["file"] == "GR_\\xc3(.csv" and report["refused"] == 1


def test_a_read_error_moves_the_file_aside_with_a_report_naming_it_and_the_poll_goes_on(inbox, monkeypatch):
    bus = Bus("stock_lines.in.yaml")
    (inbox / "a_broken.csv").write_bytes(GOOD)
    (inbox / "b_good.csv").write_bytes(GOOD)
    real_open = LocalDirectory.open

    def failing_open(self, path, **options):
        if Path(path).name == "a_broken.csv":
            raise OSError(5, "Input/output error")
        return real_open(self, path, **options)

    monkeypatch.setattr(LocalDirectory, "open", failing_open)
    make_source(inbox, bus, per="record").poll()

    assert good_skus(bus) == ["A1", "A2"]
    assert "Input/output error" in report_of(inbox, "a_broken.csv")["error"]
    assert bus.set_aside == ["error"]


def test_a_file_that_cannot_be_moved_aside_is_reported_once_and_skipped(inbox, tmp_path, caplog):
    bus = Bus("stock_lines.in.yaml")
    not_a_directory = tmp_path / "error-is-a-file"
    not_a_directory.write_bytes(b"")
    source = make_source(inbox, bus, per="record", error_dir=str(not_a_directory))
    (inbox / "a_empty.csv").write_bytes(b"")

    with caplog.at_level(logging.ERROR, logger="esb.adapters.flatfile"):
        for _ in range(3):
            source.poll()
        (inbox / "b_good.csv").write_bytes(GOOD)
        source.poll()

    assert good_skus(bus) == ["A1", "A2"]
    assert [record.message for record in caplog.records].count(
        next(record.message for record in caplog.records if "cannot be moved" in record.message)) == 1
    assert bus.set_aside == ["unmovable"]


hostile_names = st.binary(min_size=1, max_size=230).filter(
    lambda name: b"/" not in name and b"\0" not in name and not name.startswith(b".")
    and name not in (b"processed", b"error") and not name.endswith((b".tmp", b".part", b".partial",
                                                                    b".filepart", b".crdownload")))
hostile_contents = st.one_of(
    st.binary(max_size=600),
    st.sampled_from(HOSTILE_QUANTITIES).map(lambda number: b"sku,qty,description\nA1," + number + b",x\n"),
    st.sampled_from([b"sku,qty,description\n", b"\0\0\0\n", b"sku,qty,description\nA1,\0,x\n",
                     b"\xff\xfesku,qty\n", b'sku,qty,description\nA1,1,"open\n']))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=hostile_names, content=hostile_contents, per=st.sampled_from(["file", "record"]))
def test_whatever_file_is_dropped_a_valid_file_dropped_after_it_is_delivered(name, content, per):
    with tempfile.TemporaryDirectory() as temporary:
        inbox = Path(temporary) / "inbox"
        inbox.mkdir()
        bus = Bus("stock_lines.in.yaml")
        source = make_source(inbox, bus, per=per)
        hostile = os.fsdecode(b"h" + name)
        (inbox / hostile).write_bytes(content)
        source.poll()
        (inbox / "zz_valid.csv").write_bytes(GOOD)

        source.poll()

        assert good_skus(bus)[-2:] == ["A1", "A2"]
        assert "zz_valid.csv" in names_in(inbox / "processed")
        assert names_in(inbox) == sorted(["processed"] + (["error"] if (inbox / "error").exists() else []))
        assert names_in(inbox / ".claimed") == []


# --- files that carry nothing -------------------------------------------------------------------

@pytest.mark.parametrize("per", ["file", "record"])
def test_a_header_only_csv_goes_to_error_with_a_report(inbox, per):
    bus = Bus("stock_lines.in.yaml")
    (inbox / "header_only.csv").write_bytes(b"sku,qty,description\r\n")

    make_source(inbox, bus, per=per).poll()

    assert bus.published == [] and bus.dead == []
    assert "no record" in report_of(inbox, "header_only.csv")["error"]
    assert bus.set_aside == ["empty"]


def test_a_header_only_csv_is_processed_with_empty_file_ignore(inbox):
    bus = Bus("stock_lines.in.yaml")
    (inbox / "header_only.csv").write_bytes(b"sku,qty,description\r\n")

    make_source(inbox, bus, per="record", empty_file="ignore").poll()

    assert names_in(inbox / "processed") == ["header_only.csv"] and bus.set_aside == []


@pytest.mark.parametrize("per", ["file", "record"])
def test_a_header_of_nul_bytes_is_a_decode_error(inbox, per):
    bus = Bus("stock_lines.in.yaml")
    (inbox / "nul.csv").write_bytes(b"\0\0\0\0\n\0\0\0\n")

    make_source(inbox, bus, per=per).poll()

    report = report_of(inbox, "nul.csv")
    assert "NUL" in json.dumps(report) and bus.published == []


def test_nul_bytes_in_a_row_are_a_decode_error_naming_the_line(inbox):
    bus = Bus("stock_lines.in.yaml")
    (inbox / "nul_row.csv").write_bytes(b"sku,qty,description\nA1,1,one\nA2,\0\0,two\n")

    make_source(inbox, bus, per="record").poll()

    assert good_skus(bus) == ["A1"]
    [problem] = report_of(inbox, "nul_row.csv")["problems"]
    assert problem["line"] == 3 and problem["error"] == "decode" and "NUL" in problem["message"]


# --- half-written files -------------------------------------------------------------------------

class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_min_age_leaves_a_stalled_writers_file_until_it_is_unchanged_for_min_age(inbox):
    bus = Bus("stock_lines.in.yaml")
    path = inbox / "GR_1.csv"
    path.write_bytes(b"sku,qty,description\nA1,1,one\nA2,2,two\n")  # the first half
    written = path.stat().st_mtime
    clock = Clock(written)
    source = make_source(inbox, bus, clock=clock, per="file", min_age=5)

    clock.now = written + 3.5  # the writer stalls 3.5 s
    source.poll()
    assert bus.published == []
    with open(path, "ab") as handle:  # and writes the second half
        handle.write(b"A3,3,three\nA4,4,four\n")
    clock.now = path.stat().st_mtime + 1
    source.poll()
    assert bus.published == []
    clock.now += 5
    source.poll()

    assert good_skus(bus) == ["A1", "A2", "A3", "A4"] and len(bus.published) == 1


def test_min_age_is_the_default_so_a_file_written_just_now_is_left_alone(inbox):
    bus = Bus("stock_lines.in.yaml")
    (inbox / "GR_1.csv").write_bytes(GOOD)
    clock = Clock((inbox / "GR_1.csv").stat().st_mtime + 1)
    source = FileSource(Endpoint("file", {"dir": str(inbox), "per": "record"}), None, "files", clock=clock)
    source.start(bus.context(inbox.parent / "data"))

    source.poll()

    assert bus.published == [] and names_in(inbox) == ["GR_1.csv"]


@pytest.mark.parametrize(("done_file", "marker"), [("{name}.done", "GR_1.csv.done"),
                                                   ("{stem}.ok", "GR_1.ok")])
def test_a_done_file_waits_for_its_marker_and_removes_it(inbox, done_file, marker):
    bus = Bus("stock_lines.in.yaml")
    (inbox / "GR_1.csv").write_bytes(GOOD)
    source = make_source(inbox, bus, per="record", pattern="*", done_file=done_file, min_age=3600)

    source.poll()
    assert bus.published == []
    (inbox / marker).write_bytes(b"")
    source.poll()

    assert good_skus(bus) == ["A1", "A2"] and names_in(inbox) == ["processed"]


def test_temporary_names_are_ignored_until_the_writer_renames_the_file(inbox):
    bus = Bus("stock_lines.in.yaml")
    for name in ("GR_1.csv.part", "GR_2.csv.tmp", ".GR_3.csv", "GR_4.csv.filepart"):
        (inbox / name).write_bytes(GOOD)
    source = make_source(inbox, bus, per="record", pattern="*")

    source.poll()
    assert bus.published == []
    (inbox / "GR_1.csv.part").rename(inbox / "GR_1.csv")
    source.poll()

    assert good_skus(bus) == ["A1", "A2"]
    assert names_in(inbox) == [".GR_3.csv", "GR_2.csv.tmp", "GR_4.csv.filepart", "processed"]


# --- what is not a regular file -----------------------------------------------------------------

def test_a_symbolic_link_is_not_followed_but_moved_aside_once_with_a_report(inbox, tmp_path):
    bus = Bus("stock_lines.in.yaml")
    target = tmp_path / "secret.csv"
    target.write_bytes(GOOD)
    (inbox / "GR_link.csv").symlink_to(target)
    source = make_source(inbox, bus, per="record")

    source.poll()
    source.poll()

    assert bus.published == [] and target.read_bytes() == GOOD
    assert (inbox / "error" / "GR_link.csv").is_symlink()
    assert "symbolic link" in report_of(inbox, "GR_link.csv")["error"]
    assert bus.set_aside == ["not_regular"]


def test_a_symbolic_link_is_read_with_follow_symlinks(inbox, tmp_path):
    bus = Bus("stock_lines.in.yaml")
    target = tmp_path / "real.csv"
    target.write_bytes(GOOD)
    (inbox / "GR_link.csv").symlink_to(target)

    make_source(inbox, bus, per="record", follow_symlinks=True).poll()

    assert good_skus(bus) == ["A1", "A2"] and (inbox / "processed" / "GR_link.csv").is_symlink()
    assert target.read_bytes() == GOOD


def test_a_fifo_is_never_opened_and_moved_aside_and_the_next_file_is_delivered(inbox):
    bus = Bus("stock_lines.in.yaml")
    os.mkfifo(inbox / "a_fifo.csv")
    (inbox / "b_good.csv").write_bytes(GOOD)
    source = make_source(inbox, bus, per="record")
    poller = threading.Thread(target=source.poll, daemon=True)

    poller.start()
    poller.join(timeout=60)  # a guard against a hang, not a measure: opening the FIFO would block

    assert not poller.is_alive()
    assert good_skus(bus) == ["A1", "A2"]
    assert "never opened" in report_of(inbox, "a_fifo.csv")["error"]


def test_a_fifo_put_in_place_of_a_listed_file_is_refused_by_the_store(tmp_path):
    os.mkfifo(tmp_path / "swapped.csv")

    with pytest.raises(OSError, match="not a regular file"):
        LocalDirectory().open(tmp_path / "swapped.csv")


def test_a_directory_named_like_a_csv_file_is_moved_aside_once(inbox):
    bus = Bus("stock_lines.in.yaml")
    (inbox / "GR_dir.csv").mkdir()
    (inbox / "GR_dir.csv" / "inner.csv").write_bytes(GOOD)
    (inbox / "GR_good.csv").write_bytes(GOOD)
    source = make_source(inbox, bus, per="record", pattern="GR_*.csv")

    source.poll()
    source.poll()

    assert good_skus(bus) == ["A1", "A2"]
    assert (inbox / "error" / "GR_dir.csv" / "inner.csv").exists()
    assert "a directory" in report_of(inbox, "GR_dir.csv")["error"]
    assert bus.set_aside == ["not_regular"]


def test_an_empty_claim_folder_left_by_a_dead_worker_is_removed_and_a_live_ones_kept(inbox):
    bus = Bus("stock_lines.in.yaml")
    source = make_source(inbox, bus)
    claims = inbox / ".claimed"
    dead = claims / f"1000.999999999.abc123.{source.host}"  # no such pid
    live = claims / f"{int(os.path.getmtime(inbox) * 1000)}.{os.getppid()}.def456.{source.host}"
    dead.mkdir()
    live.mkdir()

    source.poll()

    assert names_in(claims) == [live.name]

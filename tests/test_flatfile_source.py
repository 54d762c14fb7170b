"""The flat-file source on real files: completeness, claims, per file/record/group, encodings,
bad lines (dead letter + error report), crashes and resumes, streaming."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from adapters.flatfile import CLAIM_MARK, FileSource, check_endpoint
from esb.errors import InputError, Unavailable
from esb.mapping import load_mapping
from esb.plugins import Accepted, RawMessage, SourceContext
from esb.routes import Endpoint

DATA = Path(__file__).resolve().parent / "data" / "flatfile"


class Crash(BaseException):
    """Stands for the worker dying in the middle of a file (not an error of the file: a
    BaseException, as SystemExit or KeyboardInterrupt are)."""


class Bus:
    """A `submit` like the runtime's: decode and map with a real Mapping (InputError for bad input),
    store the key and metadata as UTF-8 (as the idempotency store and message headers do),
    de-duplicate by idempotency key, answer no ids for input that makes no message, and record
    what was published, dead-lettered and set aside."""

    def __init__(self, mapping: str | None = None, *, crash_after: int | None = None,
                 unavailable_after: int | None = None):
        self.mapping = load_mapping(DATA / mapping) if mapping else None
        self.crash_after = crash_after
        self.unavailable_after = unavailable_after
        self.calls = 0
        self.published: list[tuple[str, list[dict], dict]] = []  # (key, documents, metadata)
        self.keys: set[str] = set()
        self.dead: list[tuple[RawMessage, BaseException]] = []
        self.set_aside: list[str] = []
        self.lock = threading.Lock()

    def submit(self, raw: RawMessage, *, idempotency_key: str | None = None) -> Accepted:
        with self.lock:
            self.calls += 1
            if self.crash_after is not None and self.calls > self.crash_after:
                raise Crash("the worker died")
            if self.unavailable_after is not None and self.calls > self.unavailable_after:
                raise Unavailable("broker down")
            documents = list(self.mapping.run(raw.body)) if self.mapping else []
            json.dumps([idempotency_key, raw.metadata], ensure_ascii=False).encode("utf-8")
            if self.mapping and not documents:
                return Accepted(())
            if idempotency_key in self.keys:
                return Accepted(("first",), duplicate=True)
            self.keys.add(idempotency_key)
            self.published.append((idempotency_key, documents, dict(raw.metadata)))
            return Accepted((str(len(self.published)),))

    def dead_letter(self, raw: RawMessage, error: BaseException) -> None:
        json.dumps(raw.metadata, ensure_ascii=False).encode("utf-8")
        self.dead.append((raw, error))

    def context(self, data_dir: Path) -> SourceContext:
        return SourceContext(route="files", submit=self.submit, add_url_rule=lambda *a, **k: None,
                             data_dir=data_dir, dead_letter=self.dead_letter, set_aside=self.set_aside.append)

    @property
    def documents(self) -> list[dict]:
        return [document for _, documents, _ in self.published for document in documents]


def make_source(directory: Path, bus: Bus, clock=None, **options) -> FileSource:
    options = {"dir": str(directory), "min_age": 0, **options}
    source = FileSource(Endpoint("file", options), None, "files", **({"clock": clock} if clock else {}))
    source.start(bus.context(directory.parent / "data"))
    return source


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    directory = tmp_path / "inbox"
    directory.mkdir()
    return directory


def drop(inbox: Path, sample: str, name: str | None = None) -> Path:
    return Path(shutil.copy(DATA / sample, inbox / (name or sample)))


def report_of(inbox: Path, name: str) -> dict:
    return json.loads((inbox / "error" / f"{name}.error.json").read_text(encoding="utf-8"))


# --- per record, encodings, line ends ----------------------------------------------------------

def test_a_gbk_file_with_a_bom_and_crlf_becomes_one_message_per_record(inbox):
    bus = Bus("stock_lines.in.yaml")
    drop(inbox, "gbk_with_bom.csv")

    make_source(inbox, bus, per="record", encoding="gbk").poll()

    assert bus.documents == [{"sku": "A1", "quantity": 12, "description": "铸铁砧 100磅"},
                             {"sku": "A2", "quantity": 3.5, "description": "柱塞式起爆器, 红色"}]
    assert [metadata["line"] for _, _, metadata in bus.published] == [2, 3]
    assert (inbox / "processed" / "gbk_with_bom.csv").read_bytes() == (DATA / "gbk_with_bom.csv").read_bytes()
    assert not list((inbox / ".claimed").iterdir()) and not list((inbox / ".progress").iterdir())


def test_a_utf8_bom_wins_over_the_declared_gbk_in_every_record(inbox):
    bus = Bus("stock_lines.in.yaml")
    drop(inbox, "utf8_bom_declared_gbk.csv")

    make_source(inbox, bus, per="record", encoding="gbk").poll()

    assert [d["description"] for d in bus.documents] == ["铸铁砧 100磅", "柱塞式起爆器, 红色"]
    assert all(raw_body.startswith(b"\xef\xbb\xbfsku,qty") for raw_body in _bodies(bus, inbox))


def _bodies(bus: Bus, inbox: Path) -> list[bytes]:
    # re-read what was sent: the header and the record lines, as in the file
    source = FileSource(Endpoint("file", {"dir": str(inbox), "per": "record", "encoding": "gbk"}), None, "x")
    from adapters.flatfile import FileReader

    reader = FileReader(source.options)
    with open(inbox / "processed" / "utf8_bom_declared_gbk.csv", "rb") as stream:
        reader.open(stream)
        return [reader.prefix + record.raw for record in reader.records(stream, reader.data_start, 1)]


def test_quoted_newlines_stay_inside_their_record_and_lines_are_counted(inbox):
    bus = Bus("stock_lines.in.yaml")
    drop(inbox, "quoted_newlines.csv")

    make_source(inbox, bus, per="record").poll()

    assert [d["description"] for d in bus.documents] == ["first line\r\nsecond line", "plain",
                                                         'a "quoted" word,\r\nand more']
    assert [(m["line"], m["last_line"]) for _, _, m in bus.published] == [(2, 3), (4, 4), (5, 6)]
    assert [key.rsplit(":", 1)[1] for key, _, _ in bus.published] == ["2", "4", "5"]


# --- bad input ---------------------------------------------------------------------------------

def test_a_bad_line_is_dead_lettered_named_in_the_report_and_the_file_goes_to_error(inbox):
    bus = Bus("stock_lines.in.yaml")
    drop(inbox, "bad_quantity.csv")

    make_source(inbox, bus, per="record").poll()

    assert [d["sku"] for d in bus.documents] == ["A1", "A3"]
    [(raw, error)] = bus.dead
    assert raw.body == b"sku,qty,description\nA2,two,bad\n" and isinstance(error, InputError)
    assert raw.metadata["line"] == 3
    report = report_of(inbox, "bad_quantity.csv")
    assert (report["published"], report["refused"]) == (2, 1)
    [problem] = report["problems"]
    assert problem["line"] == 3 and problem["error"] == "mapping" and problem["dead_lettered"]
    assert problem["problems"][0]["path"] == "quantity"
    assert (inbox / "error" / "bad_quantity.csv").exists()
    assert not (inbox / "processed").exists()


def test_a_truncated_last_line_is_refused_and_the_lines_before_it_are_published(inbox):
    bus = Bus("stock_lines.in.yaml")
    drop(inbox, "truncated_last_line.csv")

    make_source(inbox, bus, per="record").poll()

    assert [d["sku"] for d in bus.documents] == ["A1", "A2"]
    assert bus.dead[0][0].body.endswith(b"A3,")
    [problem] = report_of(inbox, "truncated_last_line.csv")["problems"]
    assert problem["line"] == 4 and problem["error"] == "decode"


def test_an_unterminated_quote_at_the_end_is_refused_with_its_line(inbox):
    bus = Bus("stock_lines.in.yaml")
    (inbox / "open_quote.csv").write_bytes(b'sku,qty,description\nA1,1,one\nA2,2,"never closed\nmore')

    make_source(inbox, bus, per="record").poll()

    assert [d["sku"] for d in bus.documents] == ["A1"]
    [problem] = report_of(inbox, "open_quote.csv")["problems"]
    assert problem["lines"] == [3, 4]


def test_an_empty_file_goes_to_error_with_a_report_and_nothing_is_dead_lettered(inbox):
    bus = Bus("stock_lines.in.yaml")
    (inbox / "empty.csv").write_bytes(b"")

    make_source(inbox, bus, per="record").poll()

    assert bus.published == [] and bus.dead == []
    assert "empty" in report_of(inbox, "empty.csv")["error"]
    assert (inbox / "error" / "empty.csv").exists()


def test_an_empty_file_is_processed_with_empty_file_ignore(inbox):
    bus = Bus("stock_lines.in.yaml")
    (inbox / "empty.csv").write_bytes(b"")

    make_source(inbox, bus, per="record", empty_file="ignore").poll()

    assert bus.published == [] and (inbox / "processed" / "empty.csv").exists()


# --- per file, per group -----------------------------------------------------------------------

def test_per_file_sends_the_whole_file_once_with_a_file_key(inbox):
    bus = Bus("stock_lines.in.yaml")
    path = drop(inbox, "gbk_with_bom.csv")
    stat = path.stat()

    make_source(inbox, bus, encoding="gbk").poll()

    [(key, documents, metadata)] = bus.published
    assert key == f"gbk_with_bom.csv:{stat.st_size}:{stat.st_mtime_ns}"
    assert len(documents) == 2 and metadata["file"] == "gbk_with_bom.csv"


def test_per_file_a_refused_file_is_dead_lettered_whole_and_the_report_names_the_line(inbox):
    bus = Bus("stock_lines.in.yaml")
    drop(inbox, "bad_quantity.csv")

    make_source(inbox, bus).poll()

    assert bus.published == [] and bus.dead[0][0].body == (DATA / "bad_quantity.csv").read_bytes()
    [problem] = report_of(inbox, "bad_quantity.csv")["problems"]
    assert problem["lines"] == [3]


def test_a_file_over_max_file_bytes_goes_to_error_unread(inbox):
    bus = Bus("stock_lines.in.yaml")
    drop(inbox, "bad_quantity.csv")

    make_source(inbox, bus, max_file_bytes=10).poll()

    assert bus.calls == 0 and "max_file_bytes" in report_of(inbox, "bad_quantity.csv")["error"]


def test_csv_records_are_grouped_by_document_number(inbox):
    bus = Bus("receipts.in.yaml")
    drop(inbox, "receipts.csv")

    make_source(inbox, bus, per="group", group_by="receipt_no").poll()

    assert [(d["receipt_number"], [line["sku"] for line in d["lines"]]) for d in bus.documents] == [
        ("R1", ["A", "B"]), ("R2", ["C"]), ("R3", ["D", "E", "F"])]
    assert [m["line"] for _, _, m in bus.published] == [2, 4, 5]


def test_fixed_width_header_and_line_records_in_gbk_are_grouped_from_each_header(inbox):
    bus = Bus("receipts_fixed.in.yaml")
    drop(inbox, "receipts_fixed.txt")

    make_source(inbox, bus, per="group", format="fixedwidth", encoding="gbk", group_starts_with="H").poll()

    assert bus.documents == [
        {"receipt_number": "R000000001", "lines": [{"sku": "SKU1", "name": "铸铁砧", "quantity": 12},
                                                   {"sku": "SKU2", "name": "红色", "quantity": 3.5}]},
        {"receipt_number": "R000000002", "lines": [{"sku": "SKU3", "name": "abc", "quantity": 1}]}]


def test_a_group_larger_than_max_file_bytes_stops_the_file_with_a_report(inbox):
    bus = Bus("receipts.in.yaml")
    drop(inbox, "receipts.csv")

    make_source(inbox, bus, per="group", group_by="receipt_no", max_file_bytes=20).poll()

    report = report_of(inbox, "receipts.csv")
    assert "larger than max_file_bytes" in report["error"] and report["published"] == 2


# --- when a file is complete -------------------------------------------------------------------

def test_dot_files_and_names_outside_the_pattern_are_left_alone(inbox):
    bus = Bus("stock_lines.in.yaml")
    drop(inbox, "receipts.csv", ".GR_1.csv.part")
    drop(inbox, "receipts.csv", "other.txt")

    make_source(inbox, bus, pattern="GR_*.csv").poll()

    assert bus.calls == 0
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == [".GR_1.csv.part", "other.txt"]


# --- claims, crashes, resumes ------------------------------------------------------------------

def test_two_sources_polling_one_directory_take_each_file_once(inbox):
    bus = Bus()  # no mapping, no de-duplication needed: each key must come once
    seen: list[str] = []
    bus.submit = lambda raw, idempotency_key=None: (seen.append(idempotency_key), Accepted(("x",)))[1]
    for number in range(60):
        (inbox / f"f{number:03}.csv").write_bytes(b"sku,qty\n" + b"".join(b"A,%d\n" % i for i in range(5)))
    sources = [make_source(inbox, bus, per="record") for _ in range(2)]
    threads = [threading.Thread(target=source.poll) for source in sources]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(seen) == 300 and len(set(seen)) == 300
    assert len(list((inbox / "processed").iterdir())) == 60


def test_a_crash_mid_file_is_resumed_from_the_saved_offset_without_duplicates(inbox):
    lines = b"".join(b"A%d,%d,x\n" % (i, i) for i in range(1, 41))
    (inbox / "big.csv").write_bytes(b"sku,qty,description\n" + lines)
    bus = Bus("stock_lines.in.yaml", crash_after=15)
    with pytest.raises(Crash):
        make_source(inbox, bus, per="record").poll()
    assert len(bus.published) == 15 and len(list((inbox / ".claimed").iterdir())) == 1

    bus.crash_after = None
    bus.calls = 0
    make_source(inbox, bus, per="record", reclaim_after=0).poll()

    assert [d["sku"] for d in bus.documents] == [f"A{i}" for i in range(1, 41)]
    assert bus.calls == 25  # resumed after line 16, nothing sent again
    assert (inbox / "processed" / "big.csv").exists()


def test_after_a_hard_crash_without_saved_progress_keys_prevent_duplicates(inbox, monkeypatch):
    lines = b"".join(b"A%d,%d,x\n" % (i, i) for i in range(1, 41))
    (inbox / "big.csv").write_bytes(b"sku,qty,description\n" + lines)
    bus = Bus("stock_lines.in.yaml", crash_after=15)
    monkeypatch.setattr(FileSource, "_save_progress", lambda self, path, progress: None)
    with pytest.raises(Crash):
        make_source(inbox, bus, per="record").poll()
    monkeypatch.undo()

    bus.crash_after = None
    make_source(inbox, bus, per="record", reclaim_after=0).poll()

    assert [d["sku"] for d in bus.documents] == [f"A{i}" for i in range(1, 41)]


def test_a_claim_of_a_process_that_died_on_this_host_is_resumed_at_once(inbox):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead_pid = int(finished.stdout)
    bus = Bus("stock_lines.in.yaml")
    source = make_source(inbox, bus, per="record")
    stamp = int(time.time() * 1000)
    claim = inbox / ".claimed" / f"bad_quantity.csv{CLAIM_MARK}{stamp}.{dead_pid}.abc123.{source.host}"
    shutil.copy(DATA / "bad_quantity.csv", claim)

    source.poll()

    assert [d["sku"] for d in bus.documents] == ["A1", "A3"]
    assert (inbox / "error" / "bad_quantity.csv").exists()


def test_a_claim_of_a_live_worker_is_left_alone_until_reclaim_after(inbox):
    bus = Bus("stock_lines.in.yaml")
    other = make_source(inbox, bus, per="record")
    drop(inbox, "bad_quantity.csv")
    claim = other._claim(inbox / "bad_quantity.csv", "bad_quantity.csv")

    make_source(inbox, bus, per="record").poll()

    assert bus.calls == 0 and claim.path.exists()


def test_an_unavailable_bus_leaves_the_file_claimed_and_the_next_poll_finishes_it(inbox):
    bus = Bus("stock_lines.in.yaml", unavailable_after=1)
    drop(inbox, "quoted_newlines.csv")
    source = make_source(inbox, bus, per="record")

    source.poll()
    assert len(bus.published) == 1 and len(list((inbox / ".claimed").iterdir())) == 1
    bus.unavailable_after = None
    source.poll()

    assert [d["sku"] for d in bus.documents] == ["A1", "A2", "A3"]
    assert (inbox / "processed" / "quoted_newlines.csv").exists()


def test_a_dead_letter_queue_that_is_down_keeps_the_file_for_the_next_poll(inbox):
    bus = Bus("stock_lines.in.yaml")
    calls = []

    def broken_dead_letter(raw, error):
        calls.append(raw)
        if len(calls) == 1:
            raise Unavailable("broker down")

    bus.dead_letter = broken_dead_letter
    drop(inbox, "bad_quantity.csv")
    source = make_source(inbox, bus, per="record")

    source.poll()
    assert not (inbox / "error").exists()
    source.poll()

    assert len(calls) == 2 and [d["sku"] for d in bus.documents] == ["A1", "A3"]
    assert report_of(inbox, "bad_quantity.csv")["refused"] == 1


def test_a_processed_name_already_taken_gets_a_time_suffix(inbox):
    bus = Bus("stock_lines.in.yaml")
    source = make_source(inbox, bus, per="record")
    for _ in range(2):
        drop(inbox, "gbk_with_bom.csv", "same.csv")
        source.poll()

    assert len(list((inbox / "processed").iterdir())) == 2


# --- streaming ---------------------------------------------------------------------------------

def test_a_20000_line_file_is_streamed_record_by_record(inbox):
    row = b"SKU-%06d,%d," + b"x" * 150 + b"\n"
    with open(inbox / "many.csv", "wb") as handle:
        handle.write(b"sku,qty,description\n")
        for number in range(20_000):
            handle.write(row % (number, number))
    size = (inbox / "many.csv").stat().st_size
    count = 0

    def submit(raw, idempotency_key=None):
        nonlocal count
        count += 1
        return Accepted(("x",))

    bus = Bus()
    bus.submit = submit
    source = make_source(inbox, bus, per="record")
    tracemalloc.start()
    source.poll()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert count == 20_000
    assert peak < size / 4, f"peak {peak} bytes for a {size}-byte file"


# --- checks --------------------------------------------------------------------------------

@pytest.mark.parametrize(("options", "expected"), [
    ({"per": "group"}, "per: group needs group_by"),
    ({"per": "record", "format": "json"}, "needs format csv or fixedwidth"),
    ({"group_by": "x"}, "only with per: group"),
    ({"per": "group", "format": "fixedwidth", "group_by": "x"}, "use group_starts_with"),
    ({"encoding": "klingon"}, "unknown encoding"),
    ({"name_template": "{id"}, "a placeholder is"),
    ({"done_file": "ready"}, "with {name} or {stem}"),
    ({"done_file": "done/{name}"}, "with {name} or {stem}"),
])
def test_options_that_do_not_fit_together_are_reported(options, expected):
    problems = check_endpoint(Endpoint("file", {"dir": "/x", **options}), None, "/")
    assert any(expected in problem for problem in problems), problems


def test_a_file_source_answers_the_readiness_hook_of_sources(inbox):
    source = make_source(inbox, Bus())

    assert source.readiness() is None  # /readyz calls it on every source

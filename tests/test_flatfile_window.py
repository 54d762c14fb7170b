"""The file source keeps a window of parts in flight (`in_flight`), on real files: answers that come
out of order never move the saved offset past an unanswered part, a failure in the middle of the
window stops the file at the last part answered in order, and the resume stores each record once."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from adapters.flatfile import source as source_module
from adapters.flatfile.window import Part, SubmitWindow
from esb.errors import FieldProblem, MappingError, Unavailable
from esb.plugins import Accepted, RawMessage
from tests.test_flatfile_source import Bus, make_source, report_of

RECORDS = 12  # on lines 2..13, after the header


class HeldBus(Bus):
    """A Bus that holds its answer for the record on line `held` until the records after it were
    answered, then answers it with `failure` (raised) or as usual; it keeps the progress file's
    saved line at that moment, and whether the later records really came first."""

    def __init__(self, held: int, failure: BaseException | None = None):
        super().__init__("stock_lines.in.yaml")
        self.held, self.failure = held, failure
        self.later_answered = threading.Event()
        self.answered_lines: list[int] = []
        self.saved_line_when_released: int | None = None
        self.later_came_first = False
        self.progress_folder: Path | None = None

    def submit(self, raw: RawMessage, *, idempotency_key: str | None = None) -> Accepted:
        line = raw.metadata["line"]
        if self.held is not None and line == self.held:
            self.later_came_first = self.later_answered.wait(10)
            self.saved_line_when_released = self._settled_progress(line - 1)
            self.held = None  # once: the resume answers as usual
            if self.failure is not None:
                failure, self.failure = self.failure, None
                with self.lock:
                    self.answered_lines.append(line)
                raise failure
        answer = super().submit(raw, idempotency_key=idempotency_key)
        with self.lock:
            self.answered_lines.append(line)
            after = RECORDS + 1 - self.held if self.held is not None else None  # the lines after the held one
            if after is not None and sum(n > self.held for n in self.answered_lines) == after:
                self.later_answered.set()
        return answer

    def _settled_progress(self, before_the_gap: int) -> int | None:
        """The saved line once the source had time to save what it could (the parts before the held
        one), and a little more, so a save past the gap would show."""
        deadline = time.monotonic() + 5
        while saved_line(self.progress_folder) != before_the_gap and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        return saved_line(self.progress_folder)


def saved_line(folder: Path) -> int | None:
    files = list(folder.glob("*.json"))
    return json.loads(files[0].read_text())["line"] if files else None


def write_records(inbox: Path, name: str = "stock.csv") -> Path:
    path = inbox / name
    rows = b"".join(b"A%d,%d,x\n" % (n, n) for n in range(1, RECORDS + 1))
    path.write_bytes(b"sku,qty,description\n" + rows)
    return path


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    directory = tmp_path / "inbox"
    directory.mkdir()
    return directory


@pytest.fixture
def save_every_part(monkeypatch):
    """The progress saved after every part answered, so a test can read where it is at any time."""
    monkeypatch.setattr(source_module, "PROGRESS_EVERY_RECORDS", 1)


def held_source(inbox: Path, bus: HeldBus, **options):
    source = make_source(inbox, bus, per="record", in_flight=16, **options)
    bus.progress_folder = inbox / ".progress"
    return source


def test_records_answered_before_an_earlier_one_do_not_move_the_offset_past_it(inbox, save_every_part):
    write_records(inbox)
    bus = HeldBus(held=5)  # the 4th record
    source = held_source(inbox, bus)

    source.poll()

    assert bus.later_came_first, "the records after the held one were never submitted while it was held"
    assert bus.answered_lines.index(5) == len(bus.answered_lines) - 1  # answered last of all
    assert bus.saved_line_when_released == 4  # lines 6..13 confirmed, and the offset still before line 5
    skus = [d["sku"] for d in bus.documents]
    assert skus[-1] == "A4" and sorted(skus) == sorted(f"A{n}" for n in range(1, RECORDS + 1))
    assert (inbox / "processed" / "stock.csv").exists()


def test_an_unavailable_bus_in_the_middle_of_the_window_stops_the_file_at_the_last_part_in_order(
        inbox, save_every_part):
    write_records(inbox)
    bus = HeldBus(held=5, failure=Unavailable("broker down"))
    source = held_source(inbox, bus)

    source.poll()
    stopped_at = saved_line(inbox / ".progress")
    published_before = len(bus.published)
    bus.calls = 0
    source.poll()  # the next poll resumes the claimed file

    assert bus.later_came_first
    assert stopped_at == 4 and published_before == RECORDS - 1  # A1..A3 and A5..A12 stored, A4 not
    assert bus.calls == RECORDS - 3  # resumed at line 5: A4 again, then A5..A12 once more (duplicates)
    skus = [d["sku"] for d in bus.documents]
    assert sorted(skus) == sorted(f"A{n}" for n in range(1, RECORDS + 1)) and len(skus) == RECORDS
    assert (inbox / "processed" / "stock.csv").exists() and not list((inbox / ".claimed").iterdir())


def test_a_refused_record_in_the_middle_of_the_window_is_dead_lettered_once_and_reported(
        inbox, save_every_part):
    write_records(inbox)
    bus = HeldBus(held=7, failure=MappingError("bad quantity", [FieldProblem("quantity", "a number")]))
    source = held_source(inbox, bus)

    source.poll()

    assert bus.later_came_first
    assert [raw.metadata["line"] for raw, _ in bus.dead] == [7]
    report = report_of(inbox, "stock.csv")
    assert (report["published"], report["refused"]) == (RECORDS - 1, 1)
    assert report["problems"][0]["lines"] == [7] and report["problems"][0]["dead_lettered"]
    assert sorted(d["sku"] for d in bus.documents) == sorted(f"A{n}" for n in range(1, RECORDS + 1) if n != 6)


def test_in_flight_1_submits_one_record_at_a_time_in_file_order(inbox):
    write_records(inbox)
    bus = Bus("stock_lines.in.yaml")
    threads = []
    submit = bus.submit

    def submit_in_this_thread(raw, *, idempotency_key=None):
        threads.append(threading.current_thread())
        return submit(raw, idempotency_key=idempotency_key)

    bus.submit = submit_in_this_thread
    make_source(inbox, bus, per="record", in_flight=1).poll()

    assert set(threads) == {threading.current_thread()}
    assert [d["sku"] for d in bus.documents] == [f"A{n}" for n in range(1, RECORDS + 1)]


def test_the_window_never_holds_more_than_its_limit_of_parts():
    outstanding, most = 0, 0
    lock = threading.Lock()
    release = threading.Semaphore(0)

    def submit(raw, *, idempotency_key=None):
        nonlocal outstanding, most
        with lock:
            outstanding += 1
            most = max(most, outstanding)
        release.acquire(timeout=5)
        with lock:
            outstanding -= 1
        return Accepted(("x",))

    answered = []
    with SubmitWindow(submit, 8) as window:
        for number in range(40):
            window.put(Part(RawMessage(b"%d" % number), f"k{number}", (number, number), number, number))
            for _ in range(2):
                release.release()
            answered.extend(part.key for part in window.answered())
        for _ in range(40):
            release.release()
        answered.extend(part.key for part in window.drain())

    assert most <= 8
    assert answered == [f"k{number}" for number in range(40)]


class Confirming:
    """A stand-in for the runtime's `Storing`: published, its confirm arriving when `confirm()`."""

    def __init__(self, number: int):
        self.number = number
        self.confirmed = threading.Event()

    def confirm(self) -> None:
        self.confirmed.set()

    def done(self) -> bool:
        return self.confirmed.is_set()

    def wait(self) -> Accepted:
        assert self.confirmed.wait(5)
        return Accepted((f"id-{self.number}",))


def test_with_submit_async_no_thread_waits_and_the_answers_still_come_in_file_order():
    published: list[Confirming] = []

    def submit_async(raw: RawMessage, *, idempotency_key: str | None = None) -> Confirming:
        if raw.body == b"refused":
            raise MappingError("mapping m: 1 field could not be mapped", [FieldProblem("sku", "missing")])
        published.append(Confirming(len(published)))
        return published[-1]

    def blocking_submit(raw: RawMessage, **_keys) -> Accepted:
        raise AssertionError("with submit_async, the blocking submit is never called")

    bodies = [b"a", b"b", b"refused", b"c"]
    with SubmitWindow(blocking_submit, 8, submit_async=submit_async) as window:
        assert window._pool is None  # no thread is started to wait for confirms
        for n, body in enumerate(bodies):
            window.put(Part(RawMessage(body, "text/csv", {"line": n}), f"key-{n}", (n, n), n, n))
        published[2].confirm()
        published[1].confirm()
        assert list(window.answered()) == []  # the first part is not confirmed: nothing passes it
        published[0].confirm()
        outcomes = [part.outcome() for part in window.answered()]
    assert [o.message_ids for o in outcomes[:2]] == [("id-0",), ("id-1",)]
    assert isinstance(outcomes[2], MappingError)  # the refused part, in its place
    assert outcomes[3].message_ids == ("id-2",)

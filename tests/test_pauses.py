"""esb.pauses: what one process records, the others follow; two recorders never undo each other."""

from __future__ import annotations

import threading
import time

from esb.pauses import SharedPauses, forget_pauses


class Consumers:
    """A transport's pause and resume, recording what is paused."""

    def __init__(self):
        self.paused: set[tuple[str, str | None]] = set()

    def pause(self, route, destination=None):
        self.paused.add((route, destination))
        return [destination]

    def resume(self, route, destination=None):
        self.paused.discard((route, destination))
        return [destination]


def _eventually(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert check()


def test_another_process_follows_a_pause_and_a_resume(tmp_path):
    mine, theirs = Consumers(), Consumers()
    here = SharedPauses(tmp_path, mine, interval=0.02).start()
    there = SharedPauses(tmp_path, theirs, interval=0.02).start()
    try:
        here.record("orders", ["wms", "erp"], paused=True)  # this process paused them itself
        _eventually(lambda: theirs.paused == {("orders", "wms"), ("orders", "erp")})
        assert mine.paused == set()  # not paused twice by its own watcher
        here.record("orders", ["erp"], paused=False)
        _eventually(lambda: theirs.paused == {("orders", "wms")})
    finally:
        here.stop()
        there.stop()


def test_a_process_started_later_takes_the_pauses_already_made_and_forgetting_clears_them(tmp_path):
    SharedPauses(tmp_path, Consumers()).record("orders", ["wms"], paused=True)
    late = Consumers()
    SharedPauses(tmp_path, late).start().stop()
    assert late.paused == {("orders", "wms")}
    forget_pauses(tmp_path)
    fresh = Consumers()
    SharedPauses(tmp_path, fresh).start().stop()
    assert fresh.paused == set()


def test_admins_in_two_processes_at_once_lose_neither_pause(tmp_path):
    recorders = [SharedPauses(tmp_path, Consumers()) for _ in range(4)]
    threads = [threading.Thread(target=lambda r=r, n=n: [r.record(f"route-{n}", [f"d{i}"], paused=True)
                                                          for i in range(25)])
               for n, r in enumerate(recorders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    follower = Consumers()
    SharedPauses(tmp_path, follower).start().stop()
    assert follower.paused == {(f"route-{n}", f"d{i}") for n in range(4) for i in range(25)}

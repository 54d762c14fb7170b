"""Pauses shared by the processes of one `esb run --workers N`.

Each process consumes the same queues, and an admin's pause or resume reaches only the process
that answered the request. So that one writes the set of paused (route, destination) pairs to
`<data_dir>/pauses.json` (atomically, under a lock, so two admins in two processes do not undo
each other), and every process looks at the file a few times a second and pauses or resumes its
own consumers to match. The first process empties it at start: a restart resumes everything, as
it does with one process.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from esb.atomicfile import atomic_write

log = logging.getLogger("esb.pauses")

PAUSES_FILE_NAME = "pauses.json"
LOOK_INTERVAL = 0.2
"""Seconds between two looks at the file: how late another process follows an admin."""

Pair = tuple[str, str]  # (route, destination)


def forget_pauses(data_dir: Path) -> None:
    """Forget every pause: the first process, before it and its workers start."""
    (Path(data_dir) / PAUSES_FILE_NAME).unlink(missing_ok=True)


class Pausable(Protocol):
    def pause(self, route: str, destination: str | None = None) -> list[str]: ...
    def resume(self, route: str, destination: str | None = None) -> list[str]: ...


class SharedPauses:
    def __init__(self, data_dir: Path, transport: Pausable, *, interval: float = LOOK_INTERVAL):
        self.path = Path(data_dir) / PAUSES_FILE_NAME
        self._lock_path = self.path.with_suffix(".lock")
        self._transport = transport
        self._interval = interval
        self._applied: set[Pair] = set()
        self._seen: tuple[int, int] | None = None  # (inode, mtime) of the file last read
        self._guard = threading.Lock()  # record() and the watcher, in this process
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="esb-pauses", daemon=True)

    def start(self) -> SharedPauses:
        self._follow()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def record(self, route: str, destinations: list[str], *, paused: bool) -> None:
        """This process paused (or resumed) `destinations` of `route`: tell the others."""
        pairs = {(route, destination) for destination in destinations}
        with self._guard, self._locked():
            state = self._read()
            state = state | pairs if paused else state - pairs
            atomic_write(self.path, json.dumps(sorted(state)).encode())
            self._applied = (self._applied | pairs) if paused else (self._applied - pairs)
            self._seen = self._stamp()

    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._follow()
            except Exception:  # noqa: BLE001 - a bad look must not end the watcher
                log.exception("esb: following the shared pauses failed; trying again")

    def _follow(self) -> None:
        """Pause or resume this process's consumers to match the file, if it changed."""
        with self._guard:
            stamp = self._stamp()
            if stamp == self._seen:
                return
            with self._locked():
                state, stamp = self._read(), self._stamp()
            for route, destination in sorted(state - self._applied):
                self._transport.pause(route, destination)
            for route, destination in sorted(self._applied - state):
                self._transport.resume(route, destination)
            self._applied, self._seen = state, stamp

    def _stamp(self) -> tuple[int, int] | None:
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            return None
        return status.st_ino, status.st_mtime_ns

    def _read(self) -> set[Pair]:
        try:
            pairs = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return set()
        except ValueError as error:  # written only by atomic_write: not expected; say so, start afresh
            log.error("esb: %s is not JSON (%s); no route is paused", self.path, error)
            return set()
        return {(str(route), str(destination)) for route, destination in pairs}

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

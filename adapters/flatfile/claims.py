"""Claims: a file renamed into a folder of its worker's in `<dir>/.claimed/`, so that of two
workers only one takes it, and any worker can tell a live worker's claim from a dead one's."""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adapters.flatfile.store import DIRECTORY, FileStore

log = logging.getLogger("esb.adapters.flatfile")

CLAIMS_DIR = ".claimed"
CLAIM_MARK = ".claim."


@dataclass(frozen=True, slots=True)
class Claim:
    """A file claimed by a worker: `<dir>/.claimed/<ms>.<pid>.<token>.<host>/<name>`, in a folder
    of its own so that the file keeps its name (however long) and the folder tells who took it
    when. A claim of an earlier version, `<dir>/.claimed/<name>.claim.<ms>.<pid>.<token>.<host>`,
    has no folder (`folder` None) and is resumed the same way."""

    path: Path
    name: str  # the file's name in dir
    claimed_ms: int
    pid: int
    token: str
    host: str
    folder: Path | None = None

    @property
    def worker(self) -> str:
        return f"{self.pid}.{self.token}.{self.host}"

    @classmethod
    def parse(cls, path: Path) -> Claim | None:
        """A claim of an earlier version (the claim in the file's own name), or None."""
        name, mark, rest = path.name.rpartition(CLAIM_MARK)
        owner = _owner(rest) if mark and name else None
        return cls(path, name, *owner) if owner else None

    @classmethod
    def in_folder(cls, folder: Path, name: str) -> Claim | None:
        owner = _owner(folder.name)
        return cls(folder / name, name, *owner, folder=folder) if owner else None


def _owner(text: str) -> tuple[int, int, str, str] | None:
    """(claimed_ms, pid, token, host) from `<ms>.<pid>.<token>.<host>`, or None."""
    parts = text.split(".", 3)
    if len(parts) != 4 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1]), parts[2], parts[3]


def host_name() -> str:
    """This host's name as a claim carries it (at most 64 characters of [A-Za-z0-9.-])."""
    return (re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host")[:64]


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is someone else's
    return True


class Claims:
    """The claims folder of one source directory, as seen by one worker (this process).

    Parameters: `store` (where the files are), `directory` (the source's dir), `reclaim_after`
    (seconds without a sign of life after which another worker's claim is taken over)."""

    def __init__(self, store: FileStore, directory: Path, reclaim_after: float):
        self.store = store
        self.folder = directory / CLAIMS_DIR
        self.reclaim_after = reclaim_after
        self.pid, self.token, self.host = os.getpid(), secrets.token_hex(3), host_name()
        self._last_ms = 0

    @property
    def worker(self) -> str:
        return f"{self.pid}.{self.token}.{self.host}"

    def take(self, path: Path, name: str) -> Claim | None:
        """Rename `path` into a new claim folder of this worker; None if another was faster."""
        claimed_ms = self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)  # one folder per claim
        folder = self.folder / f"{claimed_ms}.{self.worker}"
        self.store.make_folder(folder)
        try:
            taken = self.store.rename(path, folder / name)
        finally:
            if not self.store.entries(folder):
                self.store.remove_folder(folder)
        if not taken:
            return None  # another worker claimed it first
        return Claim(folder / name, name, claimed_ms, self.pid, self.token, self.host, folder)

    def release(self, claim: Claim) -> None:
        """Forget a claim whose file was moved out of it."""
        if claim.folder is not None:
            self.store.remove_folder(claim.folder)

    def to_resume(self, last_progress: Callable[[Claim], float | None]) -> list[Claim]:
        """This worker's claims, and the stale ones of others taken over. `last_progress(claim)`:
        the time its progress was last saved (a sign of life), or None."""
        resumable = []
        for claim in self._claims():
            if claim.worker == self.worker:
                resumable.append(claim)
            elif self.is_stale(claim, last_progress(claim)):
                taken = self.take(claim.path, claim.name)
                if taken is not None:
                    self.release(claim)
                    log.warning("resuming %s, claimed by worker %s that stopped", display_name(claim.name),
                                claim.worker)
                    resumable.append(taken)
        return resumable

    def _claims(self) -> list[Claim]:
        claims = []
        for entry in sorted(self.store.entries(self.folder), key=lambda entry: entry.name):
            path = self.folder / entry.name
            if entry.kind != DIRECTORY:
                legacy = Claim.parse(path)
                if legacy is not None:
                    claims.append(legacy)
                continue
            inside = self.store.entries(path)
            owner = Claim.in_folder(path, "")
            if owner is None:
                continue
            if not inside:  # a worker stopped between making the folder and the rename
                if owner.worker == self.worker or self.is_stale(owner, None):
                    self.store.remove_folder(path)
                continue
            claims.extend(Claim.in_folder(path, item.name) for item in inside)
        return claims

    def is_stale(self, claim: Claim, last_progress: float | None) -> bool:
        if claim.host == self.host and claim.pid != self.pid and not process_alive(claim.pid):
            return True
        last_sign_of_life = max(claim.claimed_ms / 1000, last_progress or 0.0)
        return time.time() - last_sign_of_life >= self.reclaim_after


def display_name(name: str) -> str:
    """A file name fit for a log line, a report or a message header: bytes that are not UTF-8
    shown as `\\xff` (the file system's name stays as it is)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")

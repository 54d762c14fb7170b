"""Claims: a file renamed into `<dir>/.claimed/` under its worker's name, so that of two workers
only one takes it, and any worker can tell a live worker's claim from a dead one's."""

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

from adapters.flatfile.store import FILE, FileStore

log = logging.getLogger("esb.adapters.flatfile")

CLAIMS_DIR = ".claimed"
CLAIM_MARK = ".claim."


@dataclass(frozen=True, slots=True)
class Claim:
    """A file claimed by a worker: `<dir>/.claimed/<name>.claim.<ms>.<pid>.<token>.<host>`."""

    path: Path
    name: str  # the file's name in dir
    claimed_ms: int
    pid: int
    token: str
    host: str

    @property
    def worker(self) -> str:
        return f"{self.pid}.{self.token}.{self.host}"

    @classmethod
    def parse(cls, path: Path) -> Claim | None:
        name, mark, rest = path.name.rpartition(CLAIM_MARK)
        parts = rest.split(".", 3)
        if not mark or not name or len(parts) != 4 or not parts[0].isdigit() or not parts[1].isdigit():
            return None
        return cls(path, name, int(parts[0]), int(parts[1]), parts[2], parts[3])


def host_name() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


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

    @property
    def worker(self) -> str:
        return f"{self.pid}.{self.token}.{self.host}"

    def take(self, path: Path, name: str) -> Claim | None:
        """Rename `path` into the claims folder under this worker's name; None if another was faster."""
        claimed_ms = int(time.time() * 1000)
        target = self.folder / f"{name}{CLAIM_MARK}{claimed_ms}.{self.worker}"
        if not self.store.rename(path, target):
            return None  # another worker claimed it first
        return Claim(target, name, claimed_ms, self.pid, self.token, self.host)

    def to_resume(self, last_progress: Callable[[Claim], float | None]) -> list[Claim]:
        """This worker's claims, and the stale ones of others taken over. `last_progress(claim)`:
        the time its progress was last saved (a sign of life), or None."""
        resumable = []
        for entry in sorted(self.store.entries(self.folder), key=lambda entry: entry.name):
            claim = Claim.parse(self.folder / entry.name)
            if claim is None or entry.kind != FILE:
                continue
            if claim.worker == self.worker:
                resumable.append(claim)
            elif self.is_stale(claim, last_progress(claim)):
                taken = self.take(claim.path, claim.name)
                if taken is not None:
                    log.warning("resuming %s, claimed by worker %s that stopped", claim.name, claim.worker)
                    resumable.append(taken)
        return resumable

    def is_stale(self, claim: Claim, last_progress: float | None) -> bool:
        if claim.host == self.host and claim.pid != self.pid and not process_alive(claim.pid):
            return True
        last_sign_of_life = max(claim.claimed_ms / 1000, last_progress or 0.0)
        return time.time() - last_sign_of_life >= self.reclaim_after

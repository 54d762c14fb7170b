"""Claims: a file renamed into `<dir>/.claimed/` under its worker's name, so that of two workers
only one takes it, and any worker can tell a live worker's claim from a dead one's."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

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

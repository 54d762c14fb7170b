"""What is done of a claimed file, saved beside the claims so that any worker can resume it."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.flatfile.store import Entry, FileStore

PROGRESS_DIR = ".progress"

MAX_REPORTED_PROBLEMS = 1000
"""Bad lines listed in an error report; further ones are only counted."""


@dataclass
class Progress:
    """What is done of a claimed file; saved beside the claims so any worker can resume it."""

    identity: str
    offset: int = 0
    line: int = 0
    published: int = 0
    refused: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    def add_problem(self, entry: dict[str, Any]) -> None:
        self.refused += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(entry)


class ProgressFiles:
    """The progress files of one source directory: `<dir>/.progress/<digest of the name>.<size>.
    <mtime_ns>.json` (a digest, so that any name fits; size and time tell a new file of the same
    name from the one that was claimed; the file's identity inside makes sure)."""

    def __init__(self, store: FileStore, directory: Path):
        self.store = store
        self.folder = directory / PROGRESS_DIR

    def path(self, name: str, entry: Entry) -> Path:
        digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:24]
        return self.folder / f"{digest}.{entry.size}.{entry.mtime_ns}.json"

    def load(self, path: Path, identity: str) -> Progress:
        """The saved progress of the file `identity`, or a fresh one."""
        try:
            data = json.loads(self.store.read(path) or b"null")
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("identity") != identity:
            return Progress(identity)
        return Progress(identity, int(data["offset"]), int(data["line"]), int(data.get("published", 0)),
                        int(data.get("refused", 0)), list(data.get("problems", [])))

    def save(self, path: Path, progress: Progress, worker: str) -> None:
        document = {**progress.__dict__, "worker": worker, "saved_at": now_rfc3339()}
        self.store.write(path, json_bytes(document))

    def saved_at(self, path: Path) -> float | None:
        """When `path` was last saved (seconds since the epoch), or None."""
        entry = self.store.stat(path)
        return entry.mtime_ns / 1e9 if entry is not None else None


def json_bytes(document: Any) -> bytes:
    """`document` as UTF-8 JSON; a stray surrogate (a file name's undecodable byte) is escaped."""
    return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8", "backslashreplace")


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

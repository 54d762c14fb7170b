"""The audit log: every admin action (replay, purge, ...) with who, what, when and the outcome.

An append-only JSON-lines file, `<data_dir>/audit.jsonl` by default: one object per line, written
and flushed (and fsynced) before the action's answer goes out, so an answered action is on disk.
Several processes may append to the same file: each line is one `write()` of a file opened in
append mode, which POSIX keeps whole for lines this short.
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

AUDIT_FILE_NAME = "audit.jsonl"
"""The audit log's file name in the data directory."""


class AuditLog:
    """Appends audit entries to `path` (created with its directory when missing)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def record(self, *, who: str, action: str, target: dict[str, Any], outcome: dict[str, Any],
               address: str | None = None) -> dict[str, Any]:
        """Write one entry and return it: `who` did `action` on `target`, with `outcome`."""
        entry = {"at": datetime.now(UTC).isoformat(timespec="milliseconds"), "who": who, "action": action,
                 "target": target, "outcome": outcome, "address": address}
        line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
        with self._lock:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(descriptor, line.encode("utf-8"))
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        return entry

    def entries(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest `limit` entries, newest first."""
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as lines:
            newest = deque((line for line in lines if line.strip()), maxlen=max(0, limit))
        return [json.loads(line) for line in reversed(newest)]

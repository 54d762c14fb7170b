"""What is done of a claimed file, saved beside the claims so that any worker can resume it."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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



def write_json_atomically(path: Path, document: Any) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(document, handle, ensure_ascii=False, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

